//! Each kind of refusal, as the server's backend error, reaches the `fsync` and `close` that
//! wait for it as its own errno, through the file system without a kernel (the gRPC mapping
//! from server codes to these errors is tested in `grpc_backend`).

use std::sync::Arc;

use crate::backend::BackendError;
use crate::memory_backend::MemoryBackend;
use crate::tree::ROOT;
use crate::unmounted_tests::unmounted;

#[test]
fn each_refusal_fails_fsync_close_and_the_roots_fsync_with_its_errno() {
    let kinds = [
        (BackendError::TooLarge("over --max-file-size".into()), libc::EFBIG),
        (BackendError::ReadOnly("session s is archived".into()), libc::EROFS),
        (BackendError::Unauthenticated("invalid token".into()), libc::EACCES),
        (BackendError::Denied("token may only read".into()), libc::EACCES),
        (BackendError::QuotaExceeded("too many files".into()), libc::EDQUOT),
        (BackendError::Other("storage failed".into()), libc::EIO),
    ];
    for (why, errno) in kinds {
        let backend = Arc::new(MemoryBackend::new());
        backend.write_external("f", b"on the server");
        let (fs, wb, _work) = unmounted(backend.clone());
        let f = fs.kernel_lookup(ROOT, "f").unwrap().unwrap();
        backend.refuse_changes(Some(why.clone()));
        fs.kernel_truncate(f, 0).unwrap();
        fs.kernel_write(f, 0, b"refused").unwrap();
        assert_eq!(fs.kernel_fsync(f), Err(errno), "fsync after {why}");
        assert_eq!(fs.kernel_flush(f), Err(errno), "close after {why}");
        assert_eq!(fs.kernel_fsyncdir(ROOT), Err(errno), "fsync of the root after {why}");
        let refused = wb.not_on_server();
        assert!(
            !refused.is_empty() && refused.iter().all(|r| r.errno == errno),
            "{refused:?}"
        );
        assert_eq!(backend.file("f").as_deref(), Some(&b"on the server"[..]));
    }
}
