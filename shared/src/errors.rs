//! How every error says what a retry can do. Each error type of the crate implements
//! [`Classify`] once, beside its definition: a leaf error (a port's, Vault's, an event's)
//! from what went wrong, an operation's error by its own variants or by the leaf it wraps.
//! [`crate::lambda::FunctionError`] turns any of them into the invocation's
//! `Transient.<Name>` or `Permanent.<Name>` error type, in one place.

/// Whether a retry can help, and the name an operator looks up (`docs/errors.md`).
pub trait Classify: std::error::Error {
    /// True when the same request may succeed later unchanged (a service or node did not
    /// answer); false when something must be fixed first (bad input, configuration,
    /// permissions, a refusal that protects the cluster).
    fn retry_helps(&self) -> bool;
    /// The error's name, without the `Transient.`/`Permanent.` prefix.
    fn name(&self) -> &'static str;
}

/// An HTTP status that means "you are not allowed": permanent everywhere, whatever the
/// operation, because retrying with the same credentials cannot help.
pub const DENIED: u16 = 403;
