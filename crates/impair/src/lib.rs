//! User-space UDP impairment proxy.
