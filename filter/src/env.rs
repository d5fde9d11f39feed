//! The VM's environment variables, for `signature.secrets_env` and `resign.secret_env`.
//!
//! Envoy gives a Wasm VM the variables of `vm_config.environment_variables`
//! (`key_values`, and `host_env_keys` copied from Envoy's own environment) through the
//! WASI calls `environ_sizes_get` and `environ_get`, which it offers to every module,
//! whatever target it was built for. On `wasm32-unknown-unknown` Rust's `std::env::var`
//! never asks the host (it always answers "not present"), so this module makes the two
//! WASI calls itself. Natively (the dynamic module: Envoy's own environment) it is `std::env::var`.

/// The value of one environment variable of the VM, or `None` when it is not set,
/// is not UTF-8, or the host offers no environment.
pub fn var(name: &str) -> Option<String> {
    imp::var(name)
}

/// Finds `name` in a WASI environment block: `NAME=value` entries, each ended by NUL.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_os = "unknown")),
    allow(dead_code)
)]
pub(crate) fn lookup(block: &[u8], name: &str) -> Option<String> {
    block.split(|b| *b == 0).find_map(|entry| {
        let rest = entry.strip_prefix(name.as_bytes())?;
        let value = rest.strip_prefix(b"=")?;
        String::from_utf8(value.to_vec()).ok()
    })
}

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod imp {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn environ_sizes_get(count: *mut usize, buf_size: *mut usize) -> u16;
        fn environ_get(environ: *mut *mut u8, environ_buf: *mut u8) -> u16;
    }

    /// An environment larger than this is not read (it would be a mistake, not secrets).
    const MAX_ENVIRON_BYTES: usize = 1 << 20;
    const MAX_ENVIRON_COUNT: usize = 4096;

    pub fn var(name: &str) -> Option<String> {
        let mut count: usize = 0;
        let mut size: usize = 0;
        // SAFETY: both pointers are to live, writable usizes; the host writes one
        // usize to each.
        let status = unsafe { environ_sizes_get(&mut count, &mut size) };
        if status != 0
            || count == 0
            || size == 0
            || count > MAX_ENVIRON_COUNT
            || size > MAX_ENVIRON_BYTES
        {
            return None;
        }
        let mut pointers: Vec<*mut u8> = vec![core::ptr::null_mut(); count];
        let mut block: Vec<u8> = vec![0; size];
        // SAFETY: the host writes `count` pointers into `pointers` and `size` bytes into
        // `block`, the sizes it just reported; both buffers have exactly that length.
        let status = unsafe { environ_get(pointers.as_mut_ptr(), block.as_mut_ptr()) };
        if status != 0 {
            return None;
        }
        super::lookup(&block, name)
    }
}

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
mod imp {
    pub fn var(name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn finds_exact_names_only() {
        let block = b"PERSONA_SECRET_OLD=a\0PERSONA_SECRET=wbhsec_x=y\0EMPTY=\0";
        assert_eq!(
            lookup(block, "PERSONA_SECRET").as_deref(),
            Some("wbhsec_x=y")
        );
        assert_eq!(lookup(block, "PERSONA_SECRET_OLD").as_deref(), Some("a"));
        assert_eq!(lookup(block, "EMPTY").as_deref(), Some(""));
        assert_eq!(lookup(block, "PERSONA"), None);
        assert_eq!(lookup(block, "MISSING"), None);
        assert_eq!(lookup(b"", "X"), None);
        assert_eq!(lookup(b"X=\xff\0", "X"), None);
    }
}
