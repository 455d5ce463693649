//! One module per aggregator: parsing what it sends, rendering what it expects back.
//! Adding a provider means adding a module here and its routes in `crate::http`.

pub mod africastalking;

/// Why an inbound request was refused; the message is returned to the sender as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}
