//! Sessions imported from git repositories (local paths, file:// and http(s):// URLs).
