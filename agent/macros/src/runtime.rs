//! What `#[taskscope_agent::main]` and `#[taskscope_agent::test]` share:
//! tokio's runtime arguments (`flavor`, `worker_threads`) read as tokio's
//! attributes read them, and the `async fn` they both turn into a plain one.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, ReturnType};

/// The runtime an attribute asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Runtime {
    pub multi_thread: bool,
    pub worker_threads: Option<usize>,
}

impl Runtime {
    /// Reads `name = lit` if it is `flavor` or `worker_threads`: `Ok(true)`
    /// when it was, `Ok(false)` when it is another argument.
    pub(crate) fn read(&mut self, name: &str, lit: &Lit) -> syn::Result<bool> {
        match (name, lit) {
            ("flavor", Lit::Str(s)) => {
                self.multi_thread = match s.value().as_str() {
                    "current_thread" => false,
                    "multi_thread" => true,
                    _ => return Err(syn::Error::new(s.span(), "flavor is \"multi_thread\" or \"current_thread\"")),
                }
            }
            ("worker_threads", Lit::Int(n)) => match n.base10_parse::<usize>()? {
                0 => return Err(syn::Error::new(n.span(), "worker_threads must be at least 1")),
                n => self.worker_threads = Some(n),
            },
            ("flavor" | "worker_threads", _) => {
                return Err(syn::Error::new(lit.span(), format!("unexpected value for `{name}`")))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Once every argument is read: `worker_threads` needs a multi-thread runtime.
    pub(crate) fn check(&self) -> syn::Result<()> {
        if self.worker_threads.is_some() && !self.multi_thread {
            return Err(syn::Error::new(Span::call_site(), "worker_threads needs flavor = \"multi_thread\""));
        }
        Ok(())
    }

    /// The tokio `Builder` to start from, and the `worker_threads` call on
    /// `builder` if one was asked for.
    pub(crate) fn builder(&self) -> (TokenStream, Option<TokenStream>) {
        let builder = if self.multi_thread {
            quote!(::taskscope_agent::__private::tokio::runtime::Builder::new_multi_thread())
        } else {
            quote!(::taskscope_agent::__private::tokio::runtime::Builder::new_current_thread())
        };
        (builder, self.worker_threads.map(|n| quote!(builder.worker_threads(#n);)))
    }
}

/// The literal of a `name = value` argument, or an error pointing at it.
pub(crate) fn literal(value: &Expr) -> syn::Result<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Ok(lit),
        other => Err(syn::Error::new(other.span(), "expected a literal")),
    }
}

/// `item`, which must be an `async fn`, made synchronous (the body is left
/// to the caller), and its output type.
pub(crate) fn sync_fn(item: TokenStream, attribute: &str) -> syn::Result<(ItemFn, TokenStream)> {
    let mut function: ItemFn = syn::parse2(item)?;
    if function.sig.asyncness.take().is_none() {
        return Err(syn::Error::new(function.sig.fn_token.span(), format!("{attribute} goes on an `async fn`")));
    }
    let output = match &function.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    Ok((function, output))
}
