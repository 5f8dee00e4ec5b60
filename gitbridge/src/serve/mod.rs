//! Serving git: ref advertisement, upload-pack negotiation and pack streaming.
