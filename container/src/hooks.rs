//! OCI hooks (config.json `hooks`): programs an engine asks the runtime to run at
//! fixed points of a container's life, as the runtime spec says: the container's
//! state JSON on stdin, exactly the hook's `args` (the first is argv[0]) and `env`
//! (nothing else), killed and failed after `timeout` seconds.
//!
//! One function per stage, for the lifecycle steps that reach it (`sandbox run`'s
//! path calls them itself, see [`crate::process`]):
//! - [`create_runtime`] and the deprecated [`prestart`]: in the runtime's
//!   namespaces, after the container's namespaces exist, before its root is pivoted;
//! - [`create_container`]: in the container's namespaces, before the pivot;
//! - [`start_container`]: in the container, before the user's program;
//! - [`poststart`]: in the runtime's namespaces, once the program started;
//! - [`poststop`]: after the container is gone.
//!
//! The first four stop at the first failing hook and the caller must fail the
//! container; poststart and poststop run every hook and return the first failure
//! for the caller to warn about, as the spec asks.

use oci_spec::runtime::{Hook, Hooks, State};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A point of the lifecycle where hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Deprecated twin of `createRuntime`.
    Prestart,
    /// Runtime namespaces, after the container's namespaces were made.
    CreateRuntime,
    /// Container namespaces, before the pivot.
    CreateContainer,
    /// Container, right before the user's program.
    StartContainer,
    /// Runtime namespaces, after the program started.
    Poststart,
    /// After the container was deleted.
    Poststop,
}

impl Stage {
    /// The stage's name in config.json.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::CreateContainer => "createContainer",
            Stage::StartContainer => "startContainer",
            Stage::Poststart => "poststart",
            Stage::Poststop => "poststop",
        }
    }

    /// Whether a failing hook fails the container (else: a warning).
    pub fn fatal(self) -> bool {
        !matches!(self, Stage::Poststart | Stage::Poststop)
    }

    /// The hooks of this stage in `hooks`.
    pub fn of(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            Stage::Prestart => hooks.prestart(),
            Stage::CreateRuntime => hooks.create_runtime(),
            Stage::CreateContainer => hooks.create_container(),
            Stage::StartContainer => hooks.start_container(),
            Stage::Poststart => hooks.poststart(),
            Stage::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// A hook that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// It could not be started.
    #[error("{stage} hook {path}: cannot run it: {source}")]
    Spawn {
        /// The stage's name.
        stage: &'static str,
        /// The hook's path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ended with a non-zero status or a signal.
    #[error("{stage} hook {path} failed: {status}")]
    Failed {
        /// The stage's name.
        stage: &'static str,
        /// The hook's path.
        path: String,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// It ran longer than its `timeout` and was killed.
    #[error("{stage} hook {path} timed out after {secs} s and was killed")]
    TimedOut {
        /// The stage's name.
        stage: &'static str,
        /// The hook's path.
        path: String,
        /// The timeout.
        secs: i64,
    },
    /// A `timeout` that is not positive (the spec requires > 0).
    #[error("{stage} hook {path}: timeout {secs} is not a positive number of seconds")]
    BadTimeout {
        /// The stage's name.
        stage: &'static str,
        /// The hook's path.
        path: String,
        /// The timeout given.
        secs: i64,
    },
}

/// Checks the hooks of every stage without running them (a non-positive timeout).
pub fn check(hooks: &Hooks) -> Result<(), HookError> {
    for stage in [
        Stage::Prestart,
        Stage::CreateRuntime,
        Stage::CreateContainer,
        Stage::StartContainer,
        Stage::Poststart,
        Stage::Poststop,
    ] {
        for h in stage.of(hooks) {
            if let Some(secs) = h.timeout().filter(|t| *t <= 0) {
                return Err(HookError::BadTimeout {
                    stage: stage.name(),
                    path: h.path().display().to_string(),
                    secs,
                });
            }
        }
    }
    Ok(())
}

/// Runs the hooks of `stage` with `state` on their stdin (see the module docs for
/// what a failure does).
pub fn run(stage: Stage, hooks: Option<&Hooks>, state: &State) -> Result<(), HookError> {
    let Some(hooks) = hooks else {
        return Ok(());
    };
    let list = stage.of(hooks);
    if list.is_empty() {
        return Ok(());
    }
    // Serialising our own plain struct cannot fail; an empty stdin would only be
    // a poorer hook input.
    let json = serde_json::to_vec(state).unwrap_or_default();
    let mut first = None;
    for h in list {
        if let Err(e) = run_one(stage, h, &json) {
            if stage.fatal() {
                return Err(e);
            }
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Runs one hook to its end (or its timeout).
fn run_one(stage: Stage, h: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = h.path().display().to_string();
    let mut cmd = Command::new(h.path());
    let args = h.args().as_deref().unwrap_or(&[]);
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|source| HookError::Spawn {
            stage: stage.name(),
            path: path.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin may exit first (EPIPE): not an error.
        let _ = stdin.write_all(state);
    }
    let deadline = h
        .timeout()
        .map(|s| (s, Instant::now() + Duration::from_secs(s.unsigned_abs())));
    let mut nap = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(source) => {
                return Err(HookError::Spawn {
                    stage: stage.name(),
                    path,
                    source,
                })
            }
        }
        if let Some((secs, at)) = deadline {
            if Instant::now() >= at {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::TimedOut {
                    stage: stage.name(),
                    path,
                    secs,
                });
            }
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    };
    if status.success() {
        Ok(())
    } else {
        Err(HookError::Failed {
            stage: stage.name(),
            path,
            status,
        })
    }
}

/// `prestart` hooks (deprecated; beside [`create_runtime`]).
pub fn prestart(hooks: Option<&Hooks>, state: &State) -> Result<(), HookError> {
    run(Stage::Prestart, hooks, state)
}

/// `createRuntime` hooks.
pub fn create_runtime(hooks: Option<&Hooks>, state: &State) -> Result<(), HookError> {
    run(Stage::CreateRuntime, hooks, state)
}

/// `createContainer` hooks.
pub fn create_container(hooks: Option<&Hooks>, state: &State) -> Result<(), HookError> {
    run(Stage::CreateContainer, hooks, state)
}

/// `startContainer` hooks.
pub fn start_container(hooks: Option<&Hooks>, state: &State) -> Result<(), HookError> {
    run(Stage::StartContainer, hooks, state)
}

/// `poststart` hooks (a failure is the caller's warning).
pub fn poststart(hooks: Option<&Hooks>, state: &State) -> Result<(), HookError> {
    run(Stage::Poststart, hooks, state)
}

/// `poststop` hooks (a failure is the caller's warning).
pub fn poststop(hooks: Option<&Hooks>, state: &State) -> Result<(), HookError> {
    run(Stage::Poststop, hooks, state)
}

/// The `hooks` of `BUNDLE/config.json`, for the lifecycle steps after `create`
/// (`start` runs poststart, `delete` poststop); `Ok(None)` when there are none.
pub fn from_bundle(bundle: &std::path::Path) -> Result<Option<Hooks>, String> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    match v.get("hooks") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(h) => serde_json::from_value(h.clone())
            .map(Some)
            .map_err(|e| format!("{}: hooks: {e}", path.display())),
    }
}

/// The runtime-spec state of a container.
pub fn state(
    id: &str,
    status: oci_spec::runtime::ContainerState,
    pid: Option<i32>,
    bundle: &std::path::Path,
    annotations: &std::collections::HashMap<String, String>,
) -> State {
    let mut s = State::default();
    s.set_version("1.0.2".into())
        .set_id(id.into())
        .set_status(status)
        .set_pid(pid)
        .set_bundle(bundle.to_path_buf())
        .set_annotations((!annotations.is_empty()).then(|| annotations.clone()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::ContainerState;

    fn hooks(json: &str) -> Hooks {
        serde_json::from_str(json).unwrap()
    }

    fn st() -> State {
        let mut a = std::collections::HashMap::new();
        a.insert("org.example/k".to_owned(), "v".to_owned());
        state(
            "c1",
            ContainerState::Creating,
            Some(42),
            std::path::Path::new("/b"),
            &a,
        )
    }

    #[test]
    fn a_hook_gets_the_state_its_args_and_only_its_env() {
        let dir = std::env::temp_dir().join(format!("bootlab-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = hooks(&format!(
            r#"{{"createRuntime": [{{"path": "/bin/sh", "args": ["hook-zero", "-c", "cat > {o}.stdin; echo \"$(head -c 9 /proc/$$/cmdline) $0 $1 $FOO ${{HOME:-nohome}}\" > {o}.args", "zero", "one"], "env": ["FOO=bar"]}}]}}"#,
            o = out.display()
        ));
        create_runtime(Some(&h), &st()).unwrap();
        let stdin: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("out.stdin")).unwrap()).unwrap();
        assert_eq!(stdin["id"], "c1");
        assert_eq!(stdin["status"], "creating");
        assert_eq!(stdin["pid"], 42);
        assert_eq!(stdin["bundle"], "/b");
        assert_eq!(stdin["annotations"]["org.example/k"], "v");
        assert_eq!(stdin["ociVersion"], "1.0.2");
        let args = std::fs::read_to_string(dir.join("out.args")).unwrap();
        // argv[0] is args[0]; the environment is `env` alone.
        assert_eq!(args.trim(), "hook-zero zero one bar nohome");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_and_timeouts_stop_fatal_stages_only() {
        let h = hooks(
            r#"{"prestart": [{"path": "/bin/false"}, {"path": "/nonexistent"}],
                "poststop": [{"path": "/bin/false"}, {"path": "/bin/true"}],
                "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]}"#,
        );
        let e = prestart(Some(&h), &st()).unwrap_err();
        assert!(matches!(e, HookError::Failed { .. }), "{e}");
        assert!(
            e.to_string().starts_with("prestart hook /bin/false failed"),
            "{e}"
        );
        // Non-fatal: every hook runs, the first failure is returned for a warning.
        assert!(matches!(
            poststop(Some(&h), &st()),
            Err(HookError::Failed { .. })
        ));
        let t = Instant::now();
        let e = start_container(Some(&h), &st()).unwrap_err();
        assert!(matches!(e, HookError::TimedOut { secs: 1, .. }), "{e}");
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "killed at its timeout"
        );
        assert!(
            create_container(Some(&h), &st()).is_ok(),
            "no hooks: nothing to do"
        );
        assert!(poststart(None, &st()).is_ok());
        let bad = hooks(r#"{"poststart": [{"path": "/bin/true", "timeout": 0}]}"#);
        assert!(check(&bad).unwrap_err().to_string().contains("timeout 0"));
        let missing = hooks(r#"{"createRuntime": [{"path": "/nonexistent/hook"}]}"#);
        assert!(matches!(
            create_runtime(Some(&missing), &st()),
            Err(HookError::Spawn { .. })
        ));
    }
}
