//! The closed vocabularies of an event: category, action, severity, actor type.
//! Input accepts any letter case; output is always lowercase.

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $field:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The event member this vocabulary is used for.
            pub const FIELD: &'static str = $field;

            /// The lowercase wire form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses a value in any letter case.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(text))
            }

            /// The accepted values joined for an error message.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                Self::parse(text).ok_or_else(|| format!("{} must be one of: {}", $field, Self::expected()))
            }
        }
    };
}

vocabulary!(
    /// What area of the product an event belongs to.
    Category, "event_category", {
        /// Authentication: logins, API keys, SSO.
        Auth => "auth",
        /// Data: traces, evaluations.
        Data => "data",
        /// Configuration: projects, policies.
        Config => "config",
        /// Administration: users, roles, billing, the audit log itself.
        Admin => "admin",
        /// Evaluation runs.
        Eval => "eval",
        /// Access: API requests, reads of the audit log.
        Access => "access",
    }
);

vocabulary!(
    /// What was done.
    Action, "action", {
        /// Created something.
        Create => "create",
        /// Read something.
        Read => "read",
        /// Changed something.
        Update => "update",
        /// Deleted something.
        Delete => "delete",
        /// Exported something.
        Export => "export",
        /// Shared something.
        Share => "share",
        /// Logged in (or tried to).
        Login => "login",
        /// Logged out.
        Logout => "logout",
        /// Ran something.
        Execute => "execute",
        /// Anything else.
        Other => "other",
    }
);

vocabulary!(
    /// How much an auditor should care.
    Severity, "severity", {
        /// Normal operations.
        Info => "info",
        /// Sensitive operations: deletions, exports, shares, permission changes.
        Warning => "warning",
        /// Security events: failed logins, unauthorised access. Never deduplicated.
        Critical => "critical",
    }
);

vocabulary!(
    /// Who did it.
    ActorType, "actor_type", {
        /// A person.
        User => "user",
        /// A program holding an API key.
        ApiKey => "api_key",
        /// An internal service.
        Service => "service",
        /// The system itself.
        System => "system",
        /// An unauthenticated or unverifiable caller.
        Anonymous => "anonymous",
    }
);

impl Action {
    /// The severity an action implies when neither the caller nor the
    /// catalog says otherwise (SPEC §2).
    pub const fn default_severity(self) -> Severity {
        match self {
            Action::Delete | Action::Export | Action::Share => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_writes_lowercase() {
        assert_eq!(Category::parse("DATA"), Some(Category::Data));
        assert_eq!(Category::parse("Data"), Some(Category::Data));
        assert_eq!(ActorType::parse("API_KEY").unwrap().as_str(), "api_key");
        assert_eq!(Action::parse("remove"), None);
        let err = "remove".parse::<Action>().unwrap_err();
        assert!(err.starts_with("action must be one of: create, read"), "{err}");
    }

    #[test]
    fn action_defaults() {
        assert_eq!(Action::Delete.default_severity(), Severity::Warning);
        assert_eq!(Action::Read.default_severity(), Severity::Info);
    }
}
