//! Symbols that keep parts of glibc out of the static shim.
//!
//! Every byte of the shim's text ends up resident in every shim process (the kernel maps file
//! pages around each fault in large folios), so what the static link pulls in is paid per
//! container group. glibc translates its own messages (assertions, `strerror`, `dlerror`)
//! through gettext, and gettext drags in iconv, locale loading and the static `dlopen`
//! machinery; its `__assert_fail` also prints with the wide-character printf. That is about
//! 200 KB of text the shim never runs: a Rust program never calls `setlocale`, so it stays in
//! the C locale, where every translation is the message itself. Defining these symbols here
//! satisfies glibc's references first, so the linker never extracts glibc's versions, and the
//! behaviour is unchanged.

use std::ffi::{c_char, c_int, c_uint, CStr};

/// The C locale's translation of `msgid`: itself.
///
/// # Safety
/// Called by C code with a C string, as glibc's `_()` does.
#[no_mangle]
pub unsafe extern "C" fn __dcgettext(
    _domain: *const c_char,
    msgid: *const c_char,
    _category: c_int,
) -> *mut c_char {
    msgid.cast_mut()
}

/// The public name of `__dcgettext`.
///
/// # Safety
/// As `__dcgettext`.
#[no_mangle]
pub unsafe extern "C" fn dcgettext(
    domain: *const c_char,
    msgid: *const c_char,
    category: c_int,
) -> *mut c_char {
    // SAFETY: same contract.
    unsafe { __dcgettext(domain, msgid, category) }
}

/// glibc's assertion failure, without the translation: the message on stderr, then abort.
///
/// # Safety
/// Called by C code with NUL-terminated strings (or null), as glibc's `assert` does.
#[no_mangle]
pub unsafe extern "C" fn __assert_fail(
    assertion: *const c_char,
    file: *const c_char,
    line: c_uint,
    function: *const c_char,
) -> ! {
    let text = |p: *const c_char| {
        if p.is_null() {
            "?".into()
        } else {
            // SAFETY: non-null pointers from the caller are C strings.
            unsafe { CStr::from_ptr(p) }.to_string_lossy()
        }
    };
    let msg = format!(
        "containerd-shim-polis-v2: {}:{line}: {}: Assertion `{}' failed.\n",
        text(file),
        text(function),
        text(assertion)
    );
    // SAFETY: write(2) of an owned buffer to stderr, then abort(3); nothing here can unwind.
    unsafe {
        libc::write(libc::STDERR_FILENO, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}
