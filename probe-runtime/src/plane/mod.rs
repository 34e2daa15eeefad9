//! The control plane: the runtime's own threads. `access` (who may use the socket, its
//! directory's and its own owner and mode), `control` (the socket server, the control
//! file watcher, the ticker: TTLs and summaries, `LPROBE_ARM_ALL`, exit and fork handling) and
//! `sink` (the output thread: finishes records, writes `$LPROBE_OUTPUT`, streams to `tail` and
//! `watch` subscribers). May import `hot` and `lang`; nothing imports it but the crate root
//! (which starts it) and `fuzzing`.

pub(crate) mod access;
pub(crate) mod control;
pub(crate) mod sink;
