//! A container's status (runtime-spec `creating`, `created`, `running`, `stopped`),
//! decided from what is observed, and which operation each status allows.

use serde::Serialize;

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` has not finished (no init waiting yet, or the runtime died in it).
    Creating,
    /// The init waits before its execve for `start`.
    Created,
    /// The init has exec'd the workload.
    Running,
    /// The init is gone.
    Stopped,
}

/// What `state` observes of a container, the input of [`Status::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// `create` finished writing the state (the init reported ready).
    pub created: bool,
    /// The init process (same pid and start time as recorded) is alive, not a zombie.
    pub init_alive: bool,
    /// The exec FIFO is still there (`start` removes it).
    pub fifo: bool,
}

impl Status {
    /// The status that `o` shows.
    pub fn observe(o: Observed) -> Status {
        match (o.init_alive, o.fifo, o.created) {
            (false, _, true) => Status::Stopped,
            (false, _, false) => Status::Creating,
            (true, true, true) => Status::Created,
            (true, true, false) => Status::Creating,
            (true, false, _) => Status::Running,
        }
    }

    /// The runtime-spec name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }

    /// `start` releases a created container only.
    pub fn can_start(self) -> bool {
        self == Status::Created
    }

    /// `kill` signals a container whose init lives.
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }

    /// `delete` without `--force`: a stopped container, a created one (its waiting
    /// init is killed, as runc does) or a creation that never finished.
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Stopped | Status::Created | Status::Creating)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(created: bool, init_alive: bool, fifo: bool) -> Status {
        Status::observe(Observed {
            created,
            init_alive,
            fifo,
        })
    }

    #[test]
    fn status_follows_the_init_and_the_fifo() {
        assert_eq!(obs(true, true, true), Status::Created);
        assert_eq!(obs(true, true, false), Status::Running);
        assert_eq!(obs(true, false, false), Status::Stopped);
        assert_eq!(obs(true, false, true), Status::Stopped);
        assert_eq!(obs(false, true, true), Status::Creating);
        assert_eq!(obs(false, false, true), Status::Creating);
    }

    #[test]
    fn operations_are_allowed_by_status() {
        use Status::*;
        let all = [Creating, Created, Running, Stopped];
        let start: Vec<_> = all.iter().filter(|s| s.can_start()).collect();
        assert_eq!(start, [&Created]);
        let kill: Vec<_> = all.iter().filter(|s| s.can_kill()).collect();
        assert_eq!(kill, [&Created, &Running]);
        let delete: Vec<_> = all.iter().filter(|s| s.can_delete()).collect();
        assert_eq!(delete, [&Creating, &Created, &Stopped]);
        assert_eq!(serde_json::to_string(&Running).unwrap(), "\"running\"");
    }
}
