//! The request body, read from the runtime's stream one chunk at a time, so that a
//! body past the limit is stopped at the chunk that passes it (at most the limit plus
//! one chunk is ever held). In shadow mode such a body goes on unread: the bytes read
//! so far, then the rest of the stream as it arrives.

use futures_util::StreamExt;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys};

use crate::error::{BodyError, JsError};

/// The request's body stream and, once reading started, its reader.
pub struct BodyReader {
    /// `None`: the request has no body.
    stream: Option<web_sys::ReadableStream>,
    reader: Option<web_sys::ReadableStreamDefaultReader>,
}

impl BodyReader {
    pub fn new(stream: Option<web_sys::ReadableStream>) -> BodyReader {
        BodyReader {
            stream,
            reader: None,
        }
    }

    /// Appends the next chunk to `body`: how many bytes, `None` at the end.
    pub async fn read_into(&mut self, body: &mut Vec<u8>) -> Result<Option<usize>, BodyError> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        let reader = self
            .reader
            .get_or_insert_with(|| stream.get_reader().unchecked_into());
        let unreadable = |e: JsValue| BodyError::Read(JsError::from_js(&e));
        let chunk = JsFuture::from(reader.read()).await.map_err(unreadable)?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(None);
        }
        let value =
            js_sys::Reflect::get(&chunk, &JsValue::from_str("value")).map_err(unreadable)?;
        let bytes: js_sys::Uint8Array = value.dyn_into().map_err(|_| BodyError::NotBytes)?;
        let start = body.len();
        let length = bytes.length() as usize;
        body.resize(start.saturating_add(length), 0);
        if let Some(tail) = body.get_mut(start..) {
            bytes.copy_to(tail);
        }
        Ok(Some(length))
    }

    /// The body is refused: tell the runtime the rest is not wanted, so that the
    /// reply goes out at once.
    pub fn cancel(&mut self) {
        if let Some(reader) = &self.reader {
            let _ = reader.cancel();
        }
    }

    /// The whole body again, as one stream: `read` (the bytes read so far), then the
    /// rest as it arrives. `None` when the request has no body.
    pub fn rejoin(&mut self, read: Vec<u8>) -> Option<web_sys::ReadableStream> {
        let stream = self.stream.take()?;
        let Some(reader) = self.reader.take() else {
            // Nothing was read: the original stream as it is.
            return Some(stream);
        };
        reader.release_lock();
        let head = futures_util::stream::iter([Ok(JsValue::from(js_sys::Uint8Array::from(
            read.as_slice(),
        )))]);
        let tail = wasm_streams::ReadableStream::from_raw(stream).into_stream();
        Some(wasm_streams::ReadableStream::from_stream(head.chain(tail)).into_raw())
    }
}
