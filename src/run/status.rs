//! Run states and their forward-only order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of a run. Transitions only move to a higher rank, and the
/// terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Dispatched,
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Error,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Queued,
        RunStatus::Dispatched,
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::TimedOut,
        RunStatus::Cancelled,
        RunStatus::Error,
    ];

    /// Position in the forward-only order; every terminal state shares the top rank.
    /// The store's Lua scripts carry the same table.
    pub fn rank(self) -> u8 {
        match self {
            RunStatus::Queued => 0,
            RunStatus::Dispatched => 1,
            RunStatus::Pending => 2,
            RunStatus::Running => 3,
            _ => 4,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 4
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Dispatched => "dispatched",
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Error => "error",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| format!("unknown run status {value:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn only_final_states_are_terminal() {
        let terminal: Vec<_> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::TimedOut,
                RunStatus::Cancelled,
                RunStatus::Error
            ]
        );
    }
}
