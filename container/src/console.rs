//! The terminal of a container whose `process.terminal` is true. The runtime connects
//! to the engine's console socket (`--console-socket`) and hands the connection to
//! the init; the init, once its root is the container's, opens a pty pair on the
//! container's own devpts (`/dev/ptmx`), so the terminal is `/dev/pts/N` inside,
//! sends the master through the connection (one `SCM_RIGHTS` message whose payload
//! is the pty's name, as runc sends it) and makes the slave its stdin, stdout,
//! stderr and controlling terminal (after `setsid`).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// A pty pair.
#[derive(Debug)]
pub struct Pty {
    /// The master side (the engine's).
    pub master: OwnedFd,
    /// The slave side (the container's stdio).
    pub slave: OwnedFd,
    /// The slave's path (`/dev/pts/N`).
    pub name: String,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Pty {
    /// Opens a new pty pair (close-on-exec, not our controlling terminal).
    pub fn open() -> io::Result<Pty> {
        // SAFETY: posix_openpt returns a new descriptor or -1.
        let m =
            cvt(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
        // SAFETY: `m` was just opened and is owned from here on.
        let master = unsafe { OwnedFd::from_raw_fd(m) };
        // SAFETY: grantpt/unlockpt on the master we own.
        cvt(unsafe { libc::grantpt(m) })?;
        // SAFETY: as above.
        cvt(unsafe { libc::unlockpt(m) })?;
        let mut buf = [0 as libc::c_char; 128];
        // SAFETY: `buf` is writable for its length; ptsname_r NUL-terminates.
        let rc = unsafe { libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: ptsname_r wrote a NUL-terminated string into `buf`.
        let name_c = unsafe { CStr::from_ptr(buf.as_ptr()) };
        // SAFETY: opening the slave's path; the descriptor is owned below.
        let s = cvt(unsafe {
            libc::open(
                name_c.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `s` was just opened and is owned from here on.
        let slave = unsafe { OwnedFd::from_raw_fd(s) };
        Ok(Pty {
            master,
            slave,
            name: name_c.to_string_lossy().into_owned(),
        })
    }

    /// Sets the window size (rows, columns).
    pub fn set_size(&self, rows: u16, cols: u16) -> io::Result<()> {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
        cvt(unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
    }

    /// Sends the master on the connected Unix socket `sock`.
    pub fn send_master(&self, sock: RawFd) -> io::Result<()> {
        send_fd(sock, self.name.as_bytes(), self.master.as_raw_fd())
    }

    /// Makes the slave stdin, stdout, stderr and the controlling terminal of the
    /// calling process's new session.
    pub fn take_slave(&self) -> io::Result<()> {
        for target in 0..=2 {
            // SAFETY: dup2 of a descriptor we hold onto a standard one.
            cvt(unsafe { libc::dup2(self.slave.as_raw_fd(), target) })?;
        }
        // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
        cvt(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) }).map(drop)
    }
}

/// Connects to the console socket at `path`.
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(std::os::unix::net::UnixStream::connect(
        path,
    )?))
}

/// Sends `fd` with the payload `data` in one `SCM_RIGHTS` message on `sock`.
fn send_fd(sock: RawFd, data: &[u8], fd: RawFd) -> io::Result<()> {
    let fd_len = u32::try_from(std::mem::size_of::<RawFd>()).unwrap_or(4);
    // SAFETY: CMSG_SPACE is arithmetic on a length.
    let space = unsafe { libc::CMSG_SPACE(fd_len) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` has a control buffer of CMSG_SPACE(fd_len) bytes, so the first
    // header and its data fit; the fd is copied into the data.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_len) as usize;
        std::ptr::copy_nonoverlapping(
            (&fd as *const RawFd).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<RawFd>(),
        );
    }
    loop {
        // SAFETY: `msg` and the buffers it points to are live for the call.
        let n = unsafe { libc::sendmsg(sock, &msg, 0) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_arrives_through_the_socket_and_talks_to_the_slave() {
        let dir = std::env::temp_dir().join(format!("bootlab-console-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let pty = Pty::open().unwrap();
        assert!(pty.name.starts_with("/dev/pts/"), "{}", pty.name);
        pty.set_size(24, 80).unwrap();
        let conn_fd = connect(&sock).unwrap();
        pty.send_master(conn_fd.as_raw_fd()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        // Receive the descriptor.
        let mut data = [0u8; 64];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        let mut control = [0u8; 64];
        // SAFETY: test code: a zeroed msghdr pointing at live buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
        // SAFETY: as above.
        let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) };
        assert!(n > 0);
        assert_eq!(&data[..n.unsigned_abs()], pty.name.as_bytes());
        // SAFETY: the control buffer holds the SCM_RIGHTS header recvmsg wrote.
        let got: RawFd = unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>())
        };
        // SAFETY: the received descriptor is ours now.
        let master = unsafe { OwnedFd::from_raw_fd(got) };
        // Bytes written on the slave come out of the received master.
        let slave = std::fs::File::from(pty.slave.try_clone().unwrap());
        std::io::Write::write_all(&mut &slave, b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        let mut m = std::fs::File::from(master);
        let n = std::io::Read::read(&mut m, &mut buf).unwrap();
        assert!(buf[..n].starts_with(b"hi"), "{:?}", &buf[..n]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
