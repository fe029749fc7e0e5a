//! Bridges the plugin library's own copy of the `log` crate into the host's log.
//!
//! Each `.so` statically links its own `log` with its own global logger, so records logged by a
//! plugin would otherwise vanish. The export macro installs [`Bridge`] as that logger: records
//! logged while the host is calling into a plugin go to that plugin's host-services object (and are
//! tagged with its name); records from threads the plugin spawned itself go to the first plugin
//! loaded from this library.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::Host;

static FALLBACK: OnceLock<Host> = OnceLock::new();
static BRIDGE: Bridge = Bridge;

thread_local! {
    static CURRENT: RefCell<Option<Host>> = const { RefCell::new(None) };
}

struct Bridge;

fn level_from_code(code: u8) -> log::LevelFilter {
    match code {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// Installs the bridge (once per library) and remembers `host` as the fallback destination.
pub(crate) fn install(host: &Host) {
    let _ = FALLBACK.set(host.clone());
    if log::set_logger(&BRIDGE).is_ok() {
        log::set_max_level(level_from_code(host.ffi().max_log_level()));
    }
}

pub(crate) fn with_current_host<R>(host: &Host, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Host>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = CURRENT.with(|c| c.borrow_mut().replace(host.clone()));
    let _reset = Reset(prev);
    f()
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let send = |h: &Host| {
            h.ffi().log(
                record.level() as u8,
                record.target().into(),
                message.as_str().into(),
            )
        };
        let done = CURRENT.with(|c| match c.try_borrow() {
            Ok(cur) => match cur.as_ref() {
                Some(h) => {
                    send(h);
                    true
                }
                None => false,
            },
            Err(_) => false,
        });
        if !done {
            if let Some(h) = FALLBACK.get() {
                send(h);
            }
        }
    }

    fn flush(&self) {}
}
