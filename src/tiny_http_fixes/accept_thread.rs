//! Knowing when `tiny_http`'s accept thread has died.
//!
//! `tiny_http` 0.12 accepts on a thread of its own. It ends that thread on
//! an `accept()` error (EMFILE, ENFILE, ENOBUFS, ...), which `recv` then
//! reports, and panics, silently, when an accepted socket cannot be
//! duplicated (it unwraps the `dup`, which fails when descriptors run out).
//! Either way the server accepts no more. The acceptor notices both and
//! starts a new `tiny_http` server on the same listening socket.

use std::net::TcpListener;

/// A `tiny_http` server accepting on a copy of `listener`, with the means
/// to tell when its accept thread has ended.
pub(crate) fn server_on(
    listener: &TcpListener,
) -> std::io::Result<(tiny_http::Server, AcceptWatch)> {
    let listener = listener.try_clone()?;
    let watch = AcceptWatch::new(&listener);
    let server = tiny_http::Server::from_listener(listener, None).map_err(std::io::Error::other)?;
    Ok((server, watch))
}

/// Tells whether `tiny_http`'s accept thread is still running.
///
/// That thread owns the copy of the listening socket it was given, and
/// drops it when it ends, whether on an error or by a panic. While the
/// thread runs, the copy's descriptor names the listening socket;
/// `/proc/self/fd` shows when it no longer does.
pub(crate) struct AcceptWatch {
    path: Option<String>,
    target: Option<std::path::PathBuf>,
}

impl AcceptWatch {
    fn new(copy: &TcpListener) -> AcceptWatch {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
            let target = std::fs::read_link(&path).ok();
            AcceptWatch {
                path: Some(path),
                target,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = copy;
            AcceptWatch {
                path: None,
                target: None,
            }
        }
    }

    /// False once the thread is known to have ended. Where `/proc` cannot
    /// tell, it always says true.
    pub(crate) fn alive(&self) -> bool {
        match (&self.path, &self.target) {
            (Some(path), Some(target)) => std::fs::read_link(path).ok().as_ref() == Some(target),
            _ => true,
        }
    }
}
