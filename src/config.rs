//! Settings read from environment variables and checked once at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// An environment variable whose value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {variable}={value:?}: {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

/// Which subcommand the settings are for; it decides a few defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Api,
    Worker,
    Dev,
}

/// Executor that runs programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// As child processes of the worker (`dev`, or `EXECUTOR=local`).
    Local,
    /// As Kubernetes Jobs, watched by the worker.
    Kubernetes,
}

/// A toleration added to runner Pods, from `RUNNER_TOLERATIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    pub value: Option<String>,
    pub effect: Option<String>,
}

/// Settings shared by the api, the worker and `dev`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Redis connection URL.
    pub redis_url: String,
    /// Address of the HTTP API.
    pub listen_addr: SocketAddr,
    /// Address of the worker's metrics and health listener.
    pub metrics_addr: SocketAddr,
    /// Namespace of runner Jobs, Pods and ConfigMaps.
    pub runner_namespace: String,
    /// Labels a node must carry to receive runner Pods.
    pub runner_node_selector: BTreeMap<String, String>,
    pub runner_image_python: String,
    pub runner_image_javascript: String,
    /// CPU limit of a runner container, as a Kubernetes quantity.
    pub runner_cpu_limit: String,
    /// Memory limit of a runner container, as a Kubernetes quantity.
    pub runner_memory_limit: String,
    /// The same memory limit in bytes, for the local executor.
    pub runner_memory_limit_bytes: u64,
    /// Time granted for scheduling and image pull on top of the program's timeout.
    pub runner_start_allowance: Duration,
    /// How long a finished Job stays before the TTL controller deletes it.
    pub runner_job_ttl_seconds: i32,
    pub runner_runtime_class: Option<String>,
    pub runner_tolerations: Vec<Toleration>,
    /// Maximum size of submitted code in bytes.
    pub run_max_code_bytes: usize,
    /// Maximum size of submitted standard input in bytes.
    pub run_max_stdin_bytes: usize,
    /// Maximum accepted `timeout_seconds`.
    pub run_max_timeout_seconds: u64,
    /// Maximum stored output of one run in bytes.
    pub run_max_log_bytes: usize,
    /// How long run records and logs are kept.
    pub run_retention: Duration,
    /// Concurrent queue consumers in one worker process.
    pub worker_concurrency: usize,
    /// Queue length at which new submissions are rejected with 429.
    pub queue_max_depth: u64,
    /// Accepted bearer tokens; empty means no authentication.
    pub api_tokens: Vec<String>,
    /// Steady request rate allowed to one API token, or to one client IP
    /// when tokens are off; 0 turns rate limiting off.
    pub rate_limit_per_second: u32,
    /// Requests one client may send at once before the steady rate applies.
    pub rate_limit_burst: u32,
    /// Namespace and name of the worker Deployment, for the status view.
    pub worker_namespace: String,
    pub worker_deployment: String,
    /// Identity of this worker process in Redis (`worker:{id}`).
    pub worker_id: String,
    /// Delay between taking a run and dispatching it, for fault tests only.
    pub worker_dispatch_delay: Duration,
    /// Log output format: `text` or `json`.
    pub log_format: LogFormat,
    /// Executor that runs programs; `dev` always uses the local executor.
    pub executor: ExecutorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env(mode: Mode) -> Result<Self, ConfigError> {
        Self::from_lookup(mode, |name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value.
    pub fn from_lookup(
        mode: Mode,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        let default_listen = match mode {
            Mode::Dev => "127.0.0.1:8080",
            Mode::Api | Mode::Worker => "0.0.0.0:8080",
        };
        let default_metrics = match mode {
            Mode::Dev => "127.0.0.1:9090",
            Mode::Api | Mode::Worker => "0.0.0.0:9090",
        };

        let runner_memory_limit = env.string("RUNNER_MEMORY_LIMIT", "256Mi");
        let runner_memory_limit_bytes =
            parse_memory_quantity(&runner_memory_limit).ok_or_else(|| ConfigError {
                variable: "RUNNER_MEMORY_LIMIT",
                value: runner_memory_limit.clone(),
                expected: "a memory quantity of at least 16Mi, such as 256Mi or 1Gi".into(),
            })?;
        let runner_cpu_limit = env.string("RUNNER_CPU_LIMIT", "500m");
        if !is_cpu_quantity(&runner_cpu_limit) {
            return Err(ConfigError {
                variable: "RUNNER_CPU_LIMIT",
                value: runner_cpu_limit,
                expected: "a CPU quantity such as 500m or 1".into(),
            });
        }

        let run_max_timeout_seconds = env.number("RUN_MAX_TIMEOUT_SECONDS", 300, 1, 86_400)?;
        let worker_id = lookup("WORKER_ID")
            .or_else(|| lookup("POD_NAME"))
            .filter(|id| !id.is_empty())
            .unwrap_or_else(default_worker_id);
        if !worker_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError {
                variable: "WORKER_ID",
                value: worker_id,
                expected: "letters, digits, '-', '_' and '.' only".into(),
            });
        }

        Ok(Self {
            redis_url: env.redis_url()?,
            listen_addr: env.socket_addr("LISTEN_ADDR", default_listen)?,
            metrics_addr: env.socket_addr("METRICS_ADDR", default_metrics)?,
            runner_namespace: env.dns_label("RUNNER_NAMESPACE", "code-runner-runs")?,
            runner_node_selector: env.node_selector()?,
            runner_image_python: env.image("RUNNER_IMAGE_PYTHON", "python:3.12-slim")?,
            runner_image_javascript: env.image("RUNNER_IMAGE_JAVASCRIPT", "node:20-slim")?,
            runner_cpu_limit,
            runner_memory_limit,
            runner_memory_limit_bytes,
            runner_start_allowance: Duration::from_secs(env.number(
                "RUNNER_START_ALLOWANCE_SECONDS",
                60,
                0,
                3_600,
            )?),
            runner_job_ttl_seconds: env.number("RUNNER_JOB_TTL_SECONDS", 300, 0, 604_800)? as i32,
            runner_runtime_class: lookup("RUNNER_RUNTIME_CLASS").filter(|v| !v.is_empty()),
            runner_tolerations: env.tolerations()?,
            run_max_code_bytes: env.number("RUN_MAX_CODE_BYTES", 256 * 1024, 1, 16 << 20)? as usize,
            run_max_stdin_bytes: env.number("RUN_MAX_STDIN_BYTES", 256 * 1024, 0, 16 << 20)?
                as usize,
            run_max_timeout_seconds,
            run_max_log_bytes: env.number("RUN_MAX_LOG_BYTES", 1 << 20, 1024, 64 << 20)? as usize,
            run_retention: env.duration("RUN_RETENTION", "7d")?,
            worker_concurrency: env.number("WORKER_CONCURRENCY", 4, 1, 256)? as usize,
            queue_max_depth: env.number("QUEUE_MAX_DEPTH", 10_000, 1, 10_000_000)?,
            api_tokens: env.tokens()?,
            rate_limit_per_second: env.number("RATE_LIMIT_PER_SECOND", 50, 0, 1_000_000)? as u32,
            rate_limit_burst: env.number("RATE_LIMIT_BURST", 100, 1, 1_000_000)? as u32,
            worker_namespace: env.dns_label("WORKER_NAMESPACE", "code-runner-system")?,
            worker_deployment: env.dns_label("WORKER_DEPLOYMENT", "code-runner-worker")?,
            worker_id,
            worker_dispatch_delay: Duration::from_millis(env.number(
                "WORKER_DISPATCH_DELAY_MS",
                0,
                0,
                600_000,
            )?),
            log_format: env.log_format()?,
            executor: match (mode, env.executor()?) {
                (Mode::Dev, _) => ExecutorKind::Local,
                (_, executor) => executor,
            },
        })
    }

    /// Largest request body the API reads: code and stdin, each possibly
    /// doubled by JSON escapes, plus room for the other fields.
    pub fn max_body_bytes(&self) -> usize {
        2 * (self.run_max_code_bytes + self.run_max_stdin_bytes) + 64 * 1024
    }
}

/// Typed access to the environment, producing a [`ConfigError`] per bad value.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    fn number(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.trim().parse::<u64>() {
            Ok(value) if (min..=max).contains(&value) => Ok(value),
            _ => Err(ConfigError {
                variable: name,
                value: raw,
                expected: format!("a whole number from {min} to {max}"),
            }),
        }
    }

    fn socket_addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let raw = self.string(name, default);
        raw.parse().map_err(|_| ConfigError {
            variable: name,
            value: raw,
            expected: "an IP address and port such as 127.0.0.1:8080".into(),
        })
    }

    fn redis_url(&self) -> Result<String, ConfigError> {
        let raw = self.string("REDIS_URL", "redis://127.0.0.1:6379");
        match redis::Client::open(raw.as_str()) {
            Ok(_) => Ok(raw),
            Err(_) => Err(ConfigError {
                variable: "REDIS_URL",
                value: raw,
                expected: "a URL such as redis://host:6379/0 or rediss://host:6380".into(),
            }),
        }
    }

    fn dns_label(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let raw = self.string(name, default);
        if is_dns_label(&raw) {
            Ok(raw)
        } else {
            Err(ConfigError {
                variable: name,
                value: raw,
                expected: "a DNS label: at most 63 lowercase letters, digits and '-'".into(),
            })
        }
    }

    fn image(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let raw = self.string(name, default);
        if raw.chars().any(char::is_whitespace) {
            return Err(ConfigError {
                variable: name,
                value: raw,
                expected: "a container image reference with no spaces".into(),
            });
        }
        Ok(raw)
    }

    fn node_selector(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let Some(raw) = self.get("RUNNER_NODE_SELECTOR") else {
            return Ok(BTreeMap::new());
        };
        let invalid = || ConfigError {
            variable: "RUNNER_NODE_SELECTOR",
            value: raw.clone(),
            expected: "comma-separated key=value label pairs such as runner=true,pool=fast".into(),
        };
        let mut selector = BTreeMap::new();
        for pair in raw
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (key, value) = pair.split_once('=').ok_or_else(invalid)?;
            if !is_label_key(key.trim()) || !is_label_value(value.trim()) {
                return Err(invalid());
            }
            selector.insert(key.trim().to_string(), value.trim().to_string());
        }
        Ok(selector)
    }

    fn tolerations(&self) -> Result<Vec<Toleration>, ConfigError> {
        let Some(raw) = self.get("RUNNER_TOLERATIONS") else {
            return Ok(Vec::new());
        };
        let invalid = || ConfigError {
            variable: "RUNNER_TOLERATIONS",
            value: raw.clone(),
            expected: "comma-separated key[=value][:NoSchedule|PreferNoSchedule|NoExecute] entries"
                .into(),
        };
        let mut tolerations = Vec::new();
        for entry in raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (taint, effect) = match entry.rsplit_once(':') {
                Some((taint, effect)) => (taint, Some(effect)),
                None => (entry, None),
            };
            if let Some(effect) = effect {
                if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                    return Err(invalid());
                }
            }
            let (key, value) = match taint.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (taint, None),
            };
            if !is_label_key(key) || value.is_some_and(|value| !is_label_value(value)) {
                return Err(invalid());
            }
            tolerations.push(Toleration {
                key: key.to_string(),
                value: value.map(str::to_string),
                effect: effect.map(str::to_string),
            });
        }
        Ok(tolerations)
    }

    fn duration(&self, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
        let raw = self.string(name, default);
        match humantime::parse_duration(&raw) {
            Ok(duration) if duration >= Duration::from_secs(60) => Ok(duration),
            _ => Err(ConfigError {
                variable: name,
                value: raw,
                expected: "a duration of at least 1m, such as 7d, 12h or 90m".into(),
            }),
        }
    }

    fn tokens(&self) -> Result<Vec<String>, ConfigError> {
        let Some(raw) = self.get("API_TOKENS") else {
            return Ok(Vec::new());
        };
        let tokens: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(str::to_string)
            .collect();
        if tokens.is_empty() || tokens.iter().any(|token| token.len() < 16) {
            // The value is a secret, so the error does not repeat it.
            return Err(ConfigError {
                variable: "API_TOKENS",
                value: "<hidden>".into(),
                expected: "comma-separated tokens of at least 16 characters each".into(),
            });
        }
        Ok(tokens)
    }

    fn executor(&self) -> Result<ExecutorKind, ConfigError> {
        match self.string("EXECUTOR", "kubernetes").as_str() {
            "kubernetes" => Ok(ExecutorKind::Kubernetes),
            "local" => Ok(ExecutorKind::Local),
            other => Err(ConfigError {
                variable: "EXECUTOR",
                value: other.to_string(),
                expected: "kubernetes or local".into(),
            }),
        }
    }

    fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.string("LOG_FORMAT", "text").as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(ConfigError {
                variable: "LOG_FORMAT",
                value: other.to_string(),
                expected: "text or json".into(),
            }),
        }
    }
}

fn default_worker_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "worker".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("{host}-{}", std::process::id())
}

fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// Checks a label key: an optional DNS prefix and `/`, then a name of at most 63 characters.
fn is_label_key(key: &str) -> bool {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return false;
            }
            name
        }
        None => key,
    };
    !name.is_empty() && is_label_value(name)
}

fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

fn is_cpu_quantity(value: &str) -> bool {
    let digits = value.strip_suffix('m').unwrap_or(value);
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.parse::<f64>().is_ok_and(|cores| cores > 0.0)
}

/// Parses a Kubernetes memory quantity (`256Mi`, `1G`, `1048576`) into bytes.
pub fn parse_memory_quantity(value: &str) -> Option<u64> {
    const SUFFIXES: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (digits, multiplier) = SUFFIXES
        .iter()
        .find_map(|(suffix, multiplier)| value.strip_suffix(suffix).map(|d| (d, *multiplier)))
        .unwrap_or((value, 1));
    let bytes = digits.parse::<u64>().ok()?.checked_mul(multiplier)?;
    (bytes >= 16 << 20).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(Mode::Dev, move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_are_valid() {
        let config = config_with(&[]).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.run_max_code_bytes, 256 * 1024);
        assert_eq!(config.run_max_log_bytes, 1 << 20);
        assert_eq!(config.run_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(config.runner_memory_limit_bytes, 256 << 20);
        assert!(config.api_tokens.is_empty());
        assert_eq!(config.rate_limit_per_second, 50);
        assert_eq!(config.rate_limit_burst, 100);
    }

    #[test]
    fn invalid_values_name_variable_and_value() {
        let cases = [
            ("WORKER_CONCURRENCY", "0"),
            ("WORKER_CONCURRENCY", "many"),
            ("LISTEN_ADDR", "localhost"),
            ("RUN_RETENTION", "soon"),
            ("RUNNER_NODE_SELECTOR", "runner"),
            ("RUNNER_MEMORY_LIMIT", "lots"),
            ("RUNNER_CPU_LIMIT", "-1"),
            ("REDIS_URL", "http://x"),
            ("RUNNER_TOLERATIONS", "gpu:Sometimes"),
            ("LOG_FORMAT", "xml"),
            ("EXECUTOR", "docker"),
            ("RATE_LIMIT_PER_SECOND", "-1"),
            ("RATE_LIMIT_PER_SECOND", "2000000"),
            ("RATE_LIMIT_BURST", "0"),
        ];
        for (variable, value) in cases {
            let error = config_with(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable);
            assert_eq!(error.value, value, "{variable}");
            assert!(error.to_string().contains(variable));
        }
    }

    #[test]
    fn node_selector_parses_pairs() {
        let config = config_with(&[("RUNNER_NODE_SELECTOR", "runner=true, pool=fast")]).unwrap();
        assert_eq!(config.runner_node_selector.get("runner").unwrap(), "true");
        assert_eq!(config.runner_node_selector.get("pool").unwrap(), "fast");
    }

    #[test]
    fn short_api_token_is_rejected_without_echo() {
        let error = config_with(&[("API_TOKENS", "short")]).unwrap_err();
        assert_eq!(error.variable, "API_TOKENS");
        assert!(!error.to_string().contains("short"));
    }

    #[test]
    fn memory_quantities_parse_to_bytes() {
        assert_eq!(parse_memory_quantity("256Mi"), Some(256 << 20));
        assert_eq!(parse_memory_quantity("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory_quantity("1Ki"), None);
        assert_eq!(parse_memory_quantity("abc"), None);
    }
}
