//! kube-runtime watches on runner Jobs and Pods, turned into run states.

pub mod mapping;
