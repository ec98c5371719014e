//! The mail use case (docs/architecture.md §11): what each outbox item becomes and how it is
//! delivered at least once and at most once per cause ([`Dispatcher`]), from templates
//! ([`templates`]). Feature `mail` (minijinja): only the processes that send mail — the
//! `mailer` Lambda and the dev server — carry it.

mod dispatch;
pub mod templates;

pub use dispatch::{Delivery, DispatchError, Dispatcher, DrainReport, MailSettings, MailStores};
pub use templates::{Rendered, TemplateError, Templates};
