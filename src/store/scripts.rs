//! The Lua scripts of the store, loaded once and called by SHA.

use std::sync::LazyLock;

use redis::Script;

pub static SUBMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/submit.lua")));
pub static TRANSITION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/transition.lua")));
pub static REQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/requeue.lua")));
pub static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/delete.lua")));
pub static WRITE_LOGS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/write_logs.lua")));
