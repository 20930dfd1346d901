//! Supported languages and what each needs to run.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Javascript,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Python, Language::Javascript];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Javascript => "javascript",
        }
    }

    /// Name of the source file inside the run's workspace.
    pub fn source_file(self) -> &'static str {
        match self {
            Language::Python => "main.py",
            Language::Javascript => "main.js",
        }
    }

    /// Interpreter command on the host, for the local executor, and in the runner image.
    pub fn interpreter(self) -> &'static str {
        match self {
            Language::Python => "python3",
            Language::Javascript => "node",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = String;

    /// Parses a language name; `node` and `js` are aliases of `javascript`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "python" | "python3" => Ok(Language::Python),
            "javascript" | "node" | "js" => Ok(Language::Javascript),
            other => Err(format!(
                "language must be one of: python, javascript (got {other:?})"
            )),
        }
    }
}
