//! The body of `POST /runs` and its validation.

use serde::Deserialize;

use super::Language;
use crate::config::Config;

/// The JSON body of `POST /runs`, as sent by the client.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"language": "python", "code": "print(\"Hello from k3s\")", "timeout_seconds": 30, "stdin": ""}))]
pub struct CreateRun {
    /// `python` (alias `python3`) or `javascript` (aliases `node`, `js`).
    #[schema(value_type = LanguageName)]
    pub language: String,
    /// The program's source as UTF-8; not empty or only whitespace, and at
    /// most `RUN_MAX_CODE_BYTES` bytes (413 beyond).
    #[schema(min_length = 1, pattern = "\\S")]
    pub code: String,
    /// Seconds the program may run, from 1 to `RUN_MAX_TIMEOUT_SECONDS`; 30 when left out.
    /// Any JSON number with no fraction counts as a whole number, `30.0` included,
    /// as JSON Schema's `integer` does.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 300)]
    pub timeout_seconds: Option<serde_json::Number>,
    /// Text given to the program on standard input, at most
    /// `RUN_MAX_STDIN_BYTES` bytes (413 beyond).
    #[serde(default)]
    pub stdin: Option<String>,
}

/// The language names that `POST /runs` accepts, aliases included.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum LanguageName {
    Python,
    Python3,
    Javascript,
    Node,
    Js,
}

/// A create request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedRun {
    pub language: Language,
    pub code: String,
    pub stdin: Option<String>,
    pub timeout_seconds: u64,
}

/// A field of the request that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
    /// The value is within the request limits but larger than allowed (413, not 400).
    pub too_large: bool,
}

impl ValidationError {
    fn invalid(field: &'static str, message: String) -> Self {
        Self {
            field,
            message,
            too_large: false,
        }
    }
}

pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

impl CreateRun {
    /// Checks every field against the configured limits.
    pub fn validate(self, config: &Config) -> Result<ValidatedRun, ValidationError> {
        let language: Language = self
            .language
            .parse()
            .map_err(|message| ValidationError::invalid("language", message))?;

        if self.code.trim().is_empty() {
            return Err(ValidationError::invalid(
                "code",
                "code must not be empty".into(),
            ));
        }
        if self.code.len() > config.run_max_code_bytes {
            return Err(ValidationError {
                field: "code",
                message: format!(
                    "code is {} bytes, larger than the limit of {} bytes",
                    self.code.len(),
                    config.run_max_code_bytes
                ),
                too_large: true,
            });
        }

        if let Some(stdin) = &self.stdin {
            if stdin.len() > config.run_max_stdin_bytes {
                return Err(ValidationError {
                    field: "stdin",
                    message: format!(
                        "stdin is {} bytes, larger than the limit of {} bytes",
                        stdin.len(),
                        config.run_max_stdin_bytes
                    ),
                    too_large: true,
                });
            }
        }

        let max = config.run_max_timeout_seconds;
        let timeout_seconds = match &self.timeout_seconds {
            None => DEFAULT_TIMEOUT_SECONDS.min(max),
            Some(value) => match whole_number(value) {
                Some(seconds) if (1..=max).contains(&seconds) => seconds,
                _ => {
                    return Err(ValidationError::invalid(
                        "timeout_seconds",
                        format!(
                            "timeout_seconds must be a whole number from 1 to {max} (got {value})"
                        ),
                    ))
                }
            },
        };

        Ok(ValidatedRun {
            language,
            code: self.code,
            stdin: self.stdin.filter(|stdin| !stdin.is_empty()),
            timeout_seconds,
        })
    }
}

/// Returns a JSON number as a `u64` when it is a non-negative whole number,
/// written as an integer (`30`) or with a zero fraction (`30.0`).
fn whole_number(value: &serde_json::Number) -> Option<u64> {
    if let Some(whole) = value.as_u64() {
        return Some(whole);
    }
    let float = value.as_f64()?;
    // 2^53 bounds the range where every whole f64 is exact.
    (float.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&float))
        .then_some(float as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    fn config() -> Config {
        Config::from_lookup(Mode::Dev, |name| match name {
            "RUN_MAX_CODE_BYTES" => Some("100".into()),
            _ => None,
        })
        .unwrap()
    }

    fn request(language: &str, code: &str, timeout: Option<i64>) -> CreateRun {
        CreateRun {
            language: language.into(),
            code: code.into(),
            timeout_seconds: timeout.map(serde_json::Number::from),
            stdin: None,
        }
    }

    fn timeout_of(json: &str) -> Result<u64, ValidationError> {
        let body = format!(r#"{{"language":"python","code":"x","timeout_seconds":{json}}}"#);
        let request: CreateRun = serde_json::from_str(&body).unwrap();
        request.validate(&config()).map(|run| run.timeout_seconds)
    }

    #[test]
    fn timeout_accepts_whole_numbers_only() {
        assert_eq!(timeout_of("5").unwrap(), 5);
        assert_eq!(timeout_of("5.0").unwrap(), 5);
        assert_eq!(timeout_of("5e0").unwrap(), 5);
        for invalid in [
            "5.5",
            "0",
            "0.0",
            "-1",
            "-1.0",
            "301",
            "1e300",
            "18446744073709551616",
        ] {
            let error = timeout_of(invalid).unwrap_err();
            assert_eq!(error.field, "timeout_seconds", "{invalid}");
        }
    }

    #[test]
    fn valid_request_gets_default_timeout() {
        let run = request("node", "console.log(1)", None)
            .validate(&config())
            .unwrap();
        assert_eq!(run.language, Language::Javascript);
        assert_eq!(run.timeout_seconds, 30);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (request("cobol", "x", None), "language", false),
            (request("python", "", None), "code", false),
            (request("python", "   \n", None), "code", false),
            (request("python", &"x".repeat(101), None), "code", true),
            (request("python", "x", Some(0)), "timeout_seconds", false),
            (request("python", "x", Some(-1)), "timeout_seconds", false),
            (
                request("python", "x", Some(100_000)),
                "timeout_seconds",
                false,
            ),
        ];
        for (request, field, too_large) in cases {
            let error = request.clone().validate(&config()).unwrap_err();
            assert_eq!(error.field, field, "{request:?}");
            assert_eq!(error.too_large, too_large, "{request:?}");
        }
    }

    #[test]
    fn documented_language_names_parse() {
        let schema =
            serde_json::to_value(<LanguageName as utoipa::PartialSchema>::schema()).unwrap();
        let names = schema["enum"].as_array().expect("the schema lists names");
        assert_eq!(names.len(), 5);
        for name in names {
            let name = name.as_str().unwrap();
            assert!(name.parse::<Language>().is_ok(), "{name}");
        }
    }

    #[test]
    fn timeout_error_names_value() {
        let error = request("python", "x", Some(100_000))
            .validate(&config())
            .unwrap_err();
        assert!(error.message.contains("100000"), "{}", error.message);
    }
}
