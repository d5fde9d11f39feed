//! The proxy-wasm packaging: the root context loads the configuration, each HTTP
//! context runs one [`Driver`] over the proxy-wasm host ([`host::WasmHost`]).
//!
//! Envoy 1.40 lets a Wasm filter change request headers only in the header callback,
//! and a `Pause` there becomes stop-all (the body would never come): the header
//! callback returns `Continue` and the body callbacks `Pause` while the body is read.
//! Headers to set after the body go to filter state for the route; Envoy's buffer
//! filter after this one holds the request until the decision (docs/envoy.md).

mod host;

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MetricType};

use crate::driver::{Driver, Flow};
use crate::env;
use crate::plugin::Plugin;
use host::WasmHost;

/// The root context: one per configuration.
#[derive(Default)]
pub struct Root {
    plugin: Option<Rc<Plugin<u32>>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                host::log(
                    LogLevel::Error,
                    &format!("persona-edge: cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        self.plugin = Plugin::load(
            &config,
            &env::var,
            |name| {
                hostcalls::define_metric(MetricType::Counter, name).map_err(|s| format!("{s:?}"))
            },
            &mut |level, line| host::log(host::level(level), line),
        )
        .map(Rc::new);
        self.plugin.is_some()
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Delivery(Driver::new(self.plugin.clone()))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Delivery(Driver<Rc<Plugin<u32>>>);

impl Context for Delivery {
    /// The stream is over (answered, reset or abandoned by the client): a forward
    /// without the origin's status releases its duplicate-suppression claim.
    fn on_done(&mut self) -> bool {
        self.0.on_stream_end(&mut WasmHost);
        true
    }
}

impl HttpContext for Delivery {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match self.0.on_request_headers(&mut WasmHost, end_of_stream) {
            // Reading the body: the body callbacks pause; a pause here would stop all.
            Flow::Continue | Flow::Read => Action::Continue,
            Flow::Stop => Action::Pause,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        body_action(
            self.0
                .on_request_body(&mut WasmHost, body_size, end_of_stream),
        )
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        body_action(self.0.on_request_trailers(&mut WasmHost))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.0.on_response_headers(&mut WasmHost);
        Action::Continue
    }
}

fn body_action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Read | Flow::Stop => Action::Pause,
    }
}

proxy_wasm::main! {{
    // A panic kills the VM (the release profile aborts): say so first.
    std::panic::set_hook(Box::new(|info| {
        host::log(LogLevel::Critical, &format!("persona-edge: panic, the Wasm VM stops: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}
