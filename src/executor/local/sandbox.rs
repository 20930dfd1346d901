//! Process isolation for the local executor: a new session and process group,
//! resource limits, and where the kernel allows it, new network and PID
//! namespaces and an unprivileged user.
//!
//! The program is started through a small init step of this same binary
//! (`code-runner __sandbox-init`), which forks the interpreter as PID 1 of the
//! new PID namespace. When that process dies, the kernel kills everything left
//! in the namespace, so a program that forks, calls `setsid` or ignores
//! SIGTERM cannot outlive its run.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::CloneFlags;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Uid};

/// First argument that selects the init step in `main`.
pub const INIT_ARG: &str = "__sandbox-init";
/// First of the user ids given to programs when the worker runs as root. Each
/// run gets its own id from this range, so that per-user limits such as
/// RLIMIT_NPROC count one run's processes only. No account needs to exist.
pub const FIRST_RUN_UID: u32 = 2_000_000;
/// Number of ids in that range; ids are reused round-robin.
pub const RUN_UIDS: u32 = 4096;

/// Isolation that the kernel grants this process, probed once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    /// New network and PID namespaces can be created.
    pub namespaces: bool,
    /// They need a new user namespace because this process is not root.
    pub user_namespace: bool,
    /// Programs can be started as an unprivileged user of their own.
    pub drop_user: bool,
}

impl Support {
    /// Tries each kind of isolation on a throwaway child.
    pub fn probe() -> Self {
        let root = Uid::effective().is_root();
        let try_unshare = |flags: CloneFlags| {
            let mut command = Command::new("/bin/true");
            // SAFETY: the closure only calls `unshare`, which is async-signal-safe.
            unsafe {
                command.pre_exec(move || nix::sched::unshare(flags).map_err(std::io::Error::from));
            }
            command.status().is_ok_and(|status| status.success())
        };
        let base = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID;
        if try_unshare(base) {
            Support {
                namespaces: true,
                user_namespace: false,
                drop_user: root,
            }
        } else if try_unshare(base | CloneFlags::CLONE_NEWUSER) {
            Support {
                namespaces: true,
                user_namespace: true,
                drop_user: false,
            }
        } else {
            Support {
                namespaces: false,
                user_namespace: false,
                drop_user: root,
            }
        }
    }
}

/// Resource limits applied to the program and everything it starts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub processes: u64,
    pub file_bytes: u64,
    pub open_files: u64,
}

/// Builds the command that runs `program args` in `workdir` inside the
/// sandbox, as `user` when one is given.
pub fn command(
    support: Support,
    limits: Limits,
    workdir: &std::path::Path,
    user: Option<u32>,
    program: &str,
    args: &[&str],
) -> std::io::Result<Command> {
    // /proc/self/exe still runs this binary after its file was replaced or
    // deleted, as happens when it is rebuilt while running.
    let mut command = Command::new("/proc/self/exe");
    command
        .arg(INIT_ARG)
        .arg(user.map_or_else(|| "keep".to_string(), |uid| uid.to_string()))
        .arg(workdir)
        .arg(program)
        .args(args)
        .current_dir(workdir);

    let mut flags = CloneFlags::empty();
    if support.namespaces {
        flags |= CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID;
        if support.user_namespace {
            flags |= CloneFlags::CLONE_NEWUSER;
        }
    }

    // SAFETY: between fork and exec the closure calls only async-signal-safe
    // system calls (setsid, prctl, setrlimit, unshare) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            set_parent_death_signal()?;
            apply_limits(limits)?;
            if !flags.is_empty() {
                nix::sched::unshare(flags).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    Ok(command)
}

fn set_parent_death_signal() -> std::io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes only this process.
    let result = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn apply_limits(limits: Limits) -> std::io::Result<()> {
    let set =
        |resource, value: u64| setrlimit(resource, value, value).map_err(std::io::Error::from);
    // The soft CPU limit sends SIGXCPU; the hard limit one second later sends SIGKILL.
    setrlimit(
        Resource::RLIMIT_CPU,
        limits.cpu_seconds,
        limits.cpu_seconds + 1,
    )
    .map_err(std::io::Error::from)?;
    // RLIMIT_DATA rather than RLIMIT_AS: V8 reserves far more address space than it uses.
    set(Resource::RLIMIT_DATA, limits.memory_bytes)?;
    set(Resource::RLIMIT_NPROC, limits.processes)?;
    set(Resource::RLIMIT_FSIZE, limits.file_bytes)?;
    set(Resource::RLIMIT_NOFILE, limits.open_files)?;
    set(Resource::RLIMIT_CORE, 0)?;
    Ok(())
}

/// Runs the init step: forks a minimal init into the new PID namespace,
/// which runs the program, then exits the way the program did. Runs before
/// any runtime or thread starts, so forking here is safe.
pub fn run_init(args: &[String]) -> ! {
    let [user, workdir, program, rest @ ..] = args else {
        eprintln!("usage: code-runner {INIT_ARG} UID|keep WORKDIR PROGRAM [ARGS...]");
        std::process::exit(125);
    };
    let user: Option<u32> = match user.as_str() {
        "keep" => None,
        uid => match uid.parse() {
            Ok(uid) => Some(uid),
            Err(_) => {
                eprintln!("code-runner: invalid user id {uid:?}");
                std::process::exit(125);
            }
        },
    };
    let argv: Vec<CString> = std::iter::once(program)
        .chain(rest)
        .map(|arg| {
            CString::new(arg.as_str()).expect("arguments come from the worker without NUL bytes")
        })
        .collect();
    let program = argv[0].clone();

    // The first child is PID 1 of the new namespace, which ignores signals it
    // has no handler for, even ones the program sends itself. So that child
    // stays a small init and runs the program as its own child, then passes
    // the program's end back through a pipe for this process to repeat.
    let (status_reader, status_writer) = match nix::unistd::pipe() {
        Ok(pipe) => pipe,
        Err(error) => {
            eprintln!("code-runner: creating the status pipe failed: {error}");
            std::process::exit(125);
        }
    };

    // SAFETY: this process is single-threaded at this point.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(status_reader);
            if let Err(error) = enter_program(user, workdir) {
                eprintln!("code-runner: cannot start the program: {error}");
                std::process::exit(126);
            }
            let ending = run_program(&program, &argv);
            let _ = nix::unistd::write(&status_writer, ending.as_bytes());
            std::process::exit(0);
        }
        Ok(ForkResult::Parent { child }) => {
            drop(status_writer);
            let init = wait_for(child);
            let mut report = String::new();
            let _ =
                std::io::Read::read_to_string(&mut std::fs::File::from(status_reader), &mut report);
            match (report.split_once(' '), init) {
                (Some(("exit", code)), _) => std::process::exit(code.parse().unwrap_or(125)),
                (Some(("signal", number)), _) => match number
                    .parse::<i32>()
                    .ok()
                    .and_then(|n| Signal::try_from(n).ok())
                {
                    Some(signal) => exit_by_signal(signal),
                    None => std::process::exit(125),
                },
                // The init died first, for example killed with the whole group.
                (_, WaitStatus::Exited(_, code)) => std::process::exit(code),
                (_, WaitStatus::Signaled(_, signal, _)) => exit_by_signal(signal),
                _ => std::process::exit(125),
            }
        }
        Err(error) => {
            eprintln!("code-runner: fork failed: {error}");
            std::process::exit(125);
        }
    }
}

/// Runs the program as a child of this init, reaping every other process
/// that ends meanwhile, and describes how the program ended.
fn run_program(program: &CString, argv: &[CString]) -> String {
    // SAFETY: this process is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            if set_parent_death_signal().is_err() {
                std::process::exit(126);
            }
            let error = nix::unistd::execvp(program, argv).unwrap_err();
            eprintln!("code-runner: cannot run {program:?}: {error}");
            std::process::exit(127);
        }
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(None, None) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return format!("exit {code}"),
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                    return format!("signal {}", signal as i32)
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(error) => {
                    eprintln!("code-runner: waiting for the program failed: {error}");
                    return "exit 125".to_string();
                }
            }
        },
        Err(error) => {
            eprintln!("code-runner: fork failed: {error}");
            "exit 125".to_string()
        }
    }
}

/// Waits for one child to end.
fn wait_for(child: nix::unistd::Pid) -> WaitStatus {
    loop {
        match waitpid(child, None) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return status,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(error) => {
                eprintln!("code-runner: waiting for the program failed: {error}");
                std::process::exit(125);
            }
        }
    }
}

fn enter_program(user: Option<u32>, workdir: &str) -> nix::Result<()> {
    let parent = nix::unistd::getppid();
    if let Some(uid) = user {
        nix::unistd::setgroups(&[])?;
        nix::unistd::setgid(Gid::from_raw(uid))?;
        nix::unistd::setuid(Uid::from_raw(uid))?;
    }
    // Changing credentials clears the parent-death signal (prctl(2)), so it is
    // set afterwards, and a parent that already died is caught by its pid.
    set_parent_death_signal().map_err(|_| nix::errno::Errno::last())?;
    if nix::unistd::getppid() != parent {
        std::process::exit(125);
    }
    nix::unistd::chdir(workdir)?;
    Ok(())
}

/// Ends this process with the signal that ended the program, so that the
/// worker's wait status reports that signal.
fn exit_by_signal(signal: Signal) -> ! {
    // SAFETY: restoring the default action of a signal has no memory effects.
    unsafe {
        libc::signal(signal as libc::c_int, libc::SIG_DFL);
    }
    let _ = nix::sys::signal::raise(signal);
    std::process::exit(128 + signal as i32);
}
