//! Data Cloud: token exchange and Query API v2 (filled in below).
