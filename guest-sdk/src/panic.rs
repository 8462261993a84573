//! A panic in a handler ends the invocation with a trap. Before it does, the
//! message goes to the host's log, so the operator sees why.

use std::sync::Once;

use crate::log::{write, Level};

static INSTALL: Once = Once::new();

pub(crate) fn install_hook() {
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            write(Level::Error, &format!("handler panicked: {info}"), &[]);
        }));
    });
}
