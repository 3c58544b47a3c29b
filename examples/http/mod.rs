//! The HTTP service example's server (filled in by the http_service work).
