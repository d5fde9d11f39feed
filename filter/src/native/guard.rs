//! The panic guard around every stream hook: the driver runs inside `catch_unwind`, so a
//! panic never unwinds into Envoy. A stream whose driver panicked is answered 500
//! `host_error` (unless it was already answered), logged, and left alone afterwards;
//! Envoy goes on serving. This needs `panic = "unwind"`: the module is built with the
//! `release-native` profile. At the end of a stream (`on_stream_complete`) nothing
//! can be answered any more: a panic there is only logged.
//!
//! Re-entrancy: a local reply makes Envoy run the response path at once, which may call
//! hooks of the same stream while the first hook is still running. The driver sits in a
//! `RefCell`, so such a nested hook cannot borrow it again: it gets the pass-through
//! status instead of a second `&mut` to the driver.

use core::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::SharedPlugin;
use super::abi::{HttpFilterEnvoyPtr, HttpFilterModulePtr, LogLevel};
use super::envoy::{Stream, log};
use crate::driver::{Driver, Flow};

/// What Envoy holds for a stream.
pub(super) struct StreamState {
    pub(super) driver: RefCell<Driver<SharedPlugin>>,
    pub(super) replied: Cell<bool>,
    /// The driver panicked: it is not called again (its state may be half-updated).
    pub(super) poisoned: Cell<bool>,
}

/// The panic's message, when it is a string.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs `call` on the stream's driver, inside `catch_unwind`. Returns `pass` when the
/// driver is not called (poisoned, or a nested hook of a stream whose driver is
/// running); after a panic, the flow of answering it (500 unless already answered).
pub(super) fn on_stream<R>(
    hook: &str,
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    pass: R,
    status: impl Fn(Flow) -> R,
    call: impl FnOnce(&mut Driver<SharedPlugin>, &mut Stream<'_>) -> Flow,
) -> R {
    if filter_module_ptr.is_null() || filter_envoy_ptr.is_null() {
        return pass;
    }
    // SAFETY: made by `filter_new` and alive until `filter_destroy`, which never runs
    // during another hook of the stream; hooks of one stream run on one thread, and only
    // `&` is taken here (the driver itself is behind the `RefCell`).
    let state = unsafe { &*(filter_module_ptr as *const StreamState) };
    if state.poisoned.get() {
        return pass;
    }
    let Ok(mut driver) = state.driver.try_borrow_mut() else {
        // A hook Envoy called from inside another hook of this stream (see the module
        // docs); the outer one is in charge.
        return pass;
    };
    // SAFETY: the filter pointer of the hook that is running; `stream` does not outlive it.
    let mut stream = unsafe { Stream::new(filter_envoy_ptr, &state.replied) };
    let payload = match catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "panic-test")]
        test_panic(hook, &stream);
        call(&mut driver, &mut stream)
    })) {
        Ok(flow) => return status(flow),
        Err(payload) => payload,
    };
    state.poisoned.set(true);
    let what = format!(
        "the filter panicked in {hook} ({})",
        panic_message(&*payload)
    );
    if stream.replied() {
        log(
            LogLevel::Error,
            &format!("persona-edge: {what}; already answered"),
        );
        return status(Flow::Stop);
    }
    // The driver's state may be half-updated, but it is memory-safe: it answers from a
    // fresh exchange. A panic there too is caught and logged; the stream is stopped.
    let answered = catch_unwind(AssertUnwindSafe(|| driver.abandon(&mut stream, &what)));
    if answered.is_err() {
        log(
            LogLevel::Error,
            &format!("persona-edge: {what}; answering it panicked too"),
        );
    }
    status(Flow::Stop)
}

/// Runs `call` on the stream's driver once the stream is over, inside `catch_unwind`.
/// Nothing can be answered any more: a panic is logged, and the stream left alone.
pub(super) fn on_stream_complete(
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    call: impl FnOnce(&mut Driver<SharedPlugin>, &mut Stream<'_>),
) {
    if filter_module_ptr.is_null() || filter_envoy_ptr.is_null() {
        return;
    }
    // SAFETY: as in `on_stream`: made by `filter_new`, alive until `filter_destroy`,
    // which runs after this hook; only `&` is taken.
    let state = unsafe { &*(filter_module_ptr as *const StreamState) };
    if state.poisoned.get() {
        return;
    }
    let Ok(mut driver) = state.driver.try_borrow_mut() else {
        return;
    };
    // SAFETY: the filter pointer of the hook that is running; `stream` does not outlive it.
    let mut stream = unsafe { Stream::new(filter_envoy_ptr, &state.replied) };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "panic-test")]
        test_panic("stream complete", &stream);
        call(&mut driver, &mut stream)
    })) {
        state.poisoned.set(true);
        log(
            LogLevel::Error,
            &format!(
                "persona-edge: the filter panicked at the end of a stream ({}); nothing to answer",
                panic_message(&*payload)
            ),
        );
    }
}

/// Test builds only (cargo feature `panic-test`): the request header
/// `persona-edge-test-panic: HOOK` panics in that hook (not an `x-persona-` name: the
/// core removes those at the head), so that the tests can prove
/// that a panic never crosses into Envoy. The shipped module has no such trigger.
#[cfg(feature = "panic-test")]
#[allow(clippy::panic)]
fn test_panic(hook: &str, stream: &Stream<'_>) {
    let asked = stream.header(
        super::abi::HttpHeaderType::RequestHeader,
        "persona-edge-test-panic",
    );
    if asked.as_deref() == Some(hook.as_bytes()) {
        panic!("test panic in {hook}");
    }
}
