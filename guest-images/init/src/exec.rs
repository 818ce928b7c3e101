//! Preparing a workload's execve: where to look for the program (PATH search as a
//! shell does), its argv and environment as NUL-terminated strings.

use alloc::borrow::ToOwned;
use alloc::vec::Vec;

/// PATH used when the environment has none (a kernel starts init without one).
pub const DEFAULT_PATH: &[u8] = b"/sbin:/bin:/usr/sbin:/usr/bin";

/// `s` with a NUL byte appended, or `None` if it already contains one.
pub fn c_string(s: &[u8]) -> Option<Vec<u8>> {
    if s.contains(&0) {
        return None;
    }
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s);
    v.push(0);
    Some(v)
}

/// The value of `key` in an environment of `KEY=VALUE` entries.
pub fn env_get<'a>(env: &'a [Vec<u8>], key: &[u8]) -> Option<&'a [u8]> {
    env.iter().find_map(|e| {
        let rest = e.strip_prefix(key)?;
        rest.strip_prefix(b"=")
    })
}

/// `env` with `PATH=`[`DEFAULT_PATH`] added when it has no PATH.
pub fn with_default_path(env: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = env.to_owned();
    if env_get(env, b"PATH").is_none() {
        let mut p = b"PATH=".to_vec();
        p.extend_from_slice(DEFAULT_PATH);
        out.push(p);
    }
    out
}

/// The paths to try for `program`: itself if it contains a `/`, else each
/// directory of `path` joined with it (an empty entry means the current
/// directory), in order.
pub fn candidates(program: &[u8], path: &[u8]) -> Vec<Vec<u8>> {
    if program.contains(&b'/') {
        return alloc::vec![program.to_vec()];
    }
    path.split(|&b| b == b':')
        .map(|dir| {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut p = dir.to_vec();
            p.push(b'/');
            p.extend_from_slice(program);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(entries: &[&str]) -> Vec<Vec<u8>> {
        entries.iter().map(|e| e.as_bytes().to_vec()).collect()
    }

    #[test]
    fn c_strings_end_in_one_nul() {
        assert_eq!(c_string(b"ab"), Some(b"ab\0".to_vec()));
        assert_eq!(c_string(b""), Some(b"\0".to_vec()));
        assert_eq!(c_string(b"a\0b"), None);
    }

    #[test]
    fn path_is_added_only_when_missing() {
        let kernel_env = env(&["HOME=/", "TERM=linux"]);
        let e = with_default_path(&kernel_env);
        assert_eq!(env_get(&e, b"PATH"), Some(DEFAULT_PATH));
        assert_eq!(env_get(&e, b"HOME"), Some(&b"/"[..]));
        let user_env = env(&["PATH=/opt/bin", "PATHX=no"]);
        assert_eq!(with_default_path(&user_env), user_env);
        assert_eq!(env_get(&user_env, b"PATH"), Some(&b"/opt/bin"[..]));
        assert_eq!(env_get(&user_env, b"PAT"), None);
    }

    #[test]
    fn programs_with_a_slash_are_not_searched() {
        assert_eq!(candidates(b"/bin/echo", b"/x:/y"), [b"/bin/echo".to_vec()]);
        assert_eq!(candidates(b"./run", b"/x"), [b"./run".to_vec()]);
        assert_eq!(
            candidates(b"echo", b"/sbin::/bin"),
            [
                b"/sbin/echo".to_vec(),
                b"./echo".to_vec(),
                b"/bin/echo".to_vec()
            ]
        );
    }
}
