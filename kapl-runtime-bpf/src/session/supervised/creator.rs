//! The thread that makes, removes and moves names on the commands' behalf
//! (stage: runtime, supervised calls).
//!
//! It has its own file-system context (`unshare(CLONE_FS)`), so it can
//! take each command's umask without touching the supervisor's, and no
//! capability at all (dropped for good when it starts): what it does, it
//! does with the authority the command itself has (same uid and groups,
//! no capability). The session thread decides; this one only acts, one
//! job at a time, and hands the result back.

use crate::sys;
use std::io;
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// A running creator thread.
pub struct Creator {
    jobs: mpsc::Sender<Job>,
}

impl Creator {
    /// Starts the thread; an error when it could not become what it must
    /// be (then nothing may be created on a command's behalf).
    pub fn start() -> io::Result<Creator> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<io::Result<()>>(1);
        std::thread::Builder::new()
            .name("kapl-creator".into())
            .spawn(move || {
                let ok = sys::become_creator_thread();
                let failed = ok.is_err();
                let _ = ready_tx.send(ok);
                if failed {
                    return;
                }
                for job in rx {
                    job();
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the creator thread did not start"))??;
        Ok(Creator { jobs: tx })
    }

    /// Runs `f` on the thread, with umask `umask` when given (a call that
    /// makes no new inode, such as `unlink` or `rename`, does not consult
    /// the umask, so it is left as the last job set it), and returns its
    /// result (an error if the thread is gone).
    pub fn run<T: Send + 'static>(
        &self,
        umask: Option<u32>,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            if let Some(m) = umask {
                sys::set_umask(m);
            }
            let _ = tx.send(f());
        });
        self.jobs
            .send(job)
            .map_err(|_| io::Error::other("the creator thread is gone"))?;
        rx.recv()
            .map_err(|_| io::Error::other("the creator thread is gone"))?
    }
}
