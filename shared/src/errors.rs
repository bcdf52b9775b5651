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

/// What kind of failure an outside service (an AWS API) answered, as far as a retry is
/// concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The caller's identity may not do this (IAM, a KMS key policy, a bucket policy):
    /// permanent until the permissions are fixed.
    Denied,
    /// The resource named does not exist (a table, a bucket, a key): permanent until the
    /// configuration is fixed.
    NotFound,
    /// The service failed or did not answer, after the SDK's own retries: a retry may
    /// succeed.
    Unavailable,
}

/// A port's failure: its kind and the service's own error, with its whole context
/// (service code, message, request id). It never holds a secret: the SDK does not echo
/// parameter values or request bodies in its errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFailure {
    /// Whether a retry can help.
    pub kind: FailureKind,
    /// The service's error.
    pub detail: String,
}

impl ServiceFailure {
    /// A failure a retry may cure.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Unavailable,
            detail: detail.into(),
        }
    }

    /// True unless the service denied the call or does not know the resource.
    pub fn retry_helps(&self) -> bool {
        self.kind == FailureKind::Unavailable
    }

    /// `AccessDenied`, `ResourceNotFound`, or `unavailable` (the port's own name).
    pub fn name(&self, unavailable: &'static str) -> &'static str {
        match self.kind {
            FailureKind::Denied => "AccessDenied",
            FailureKind::NotFound => "ResourceNotFound",
            FailureKind::Unavailable => unavailable,
        }
    }
}

impl std::fmt::Display for ServiceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FailureKind::Denied => write!(f, "access denied: {}", self.detail),
            FailureKind::NotFound => write!(f, "not found: {}", self.detail),
            FailureKind::Unavailable => f.write_str(&self.detail),
        }
    }
}

impl std::error::Error for ServiceFailure {}

impl From<String> for ServiceFailure {
    fn from(detail: String) -> Self {
        Self::unavailable(detail)
    }
}

impl From<&str> for ServiceFailure {
    fn from(detail: &str) -> Self {
        Self::unavailable(detail)
    }
}
