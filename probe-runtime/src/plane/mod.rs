//! The control plane: the runtime's own threads. `access` (who may use the socket, its
//! directory's and its own owner and mode), `control` (the socket server, the control
//! file watcher, the ticker: TTLs and summaries, `LPROBE_ARM_ALL`, exit and fork handling),
//! `sink` (the output thread: finishes records, writes `$LPROBE_OUTPUT`, streams to `tail` and
//! `watch` subscribers) and `bridge` (`LPROBE_OUTPUT=tracing|log`: the output thread hands
//! records to the program's own subscriber or logger). May import `hot` and `lang`; nothing
//! imports it but the crate root (which starts it and takes bridges) and `fuzzing`.

pub(crate) mod access;
pub(crate) mod bridge;
pub(crate) mod control;
pub(crate) mod sink;
