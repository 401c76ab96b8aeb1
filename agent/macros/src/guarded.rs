//! `#[taskscope_agent::test]`: `#[tokio::test]` under the agent's test
//! guard.
//!
//! The expansion is a plain `#[test]` function that builds the runtime as
//! `#[tokio::test]` does (current-thread unless told otherwise,
//! `enable_all`) and hands it, the guard's options and the body to
//! `taskscope_agent::__private::test`, which sets up the agent's mode, takes
//! the guard, runs the body and checks. Every option is read here, so a
//! misspelt one is a compile error pointing at it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Lit, LitStr, Meta, Token};

use crate::runtime::{self, Runtime};

/// What the attribute asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Args {
    runtime: Runtime,
    start_paused: bool,
    leaked_only: bool,
    include_existing: bool,
    retry_ms: Option<u64>,
    ignore_location: Vec<String>,
    ignore_function: Vec<String>,
    ignore_top_function: Vec<String>,
}

impl Default for Args {
    /// As `#[tokio::test]`: a current-thread runtime, and the guard's defaults.
    fn default() -> Args {
        Args {
            runtime: Runtime { multi_thread: false, worker_threads: None },
            start_paused: false,
            leaked_only: false,
            include_existing: false,
            retry_ms: None,
            ignore_location: Vec::new(),
            ignore_function: Vec::new(),
            ignore_top_function: Vec::new(),
        }
    }
}

const KNOWN: &str = "taskscope_agent::test takes `flavor`, `worker_threads`, `start_paused`, `leaked_only`, \
                     `include_existing`, `retry`, `ignore_location`, `ignore_function` and `ignore_top_function`";

pub(crate) fn parse_args(args: TokenStream) -> syn::Result<Args> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut out = Args::default();
    for meta in metas {
        let name = meta.path().get_ident().map(|i| i.to_string()).unwrap_or_default();
        match meta {
            Meta::Path(path) => match name.as_str() {
                "leaked_only" => out.leaked_only = true,
                "include_existing" => out.include_existing = true,
                "start_paused" => out.start_paused = true,
                _ => return Err(syn::Error::new(path.span(), KNOWN)),
            },
            Meta::NameValue(pair) => {
                let lit = runtime::literal(&pair.value)?;
                if out.runtime.read(&name, lit)? {
                    continue;
                }
                match (name.as_str(), lit) {
                    ("start_paused", Lit::Bool(b)) => out.start_paused = b.value,
                    ("retry", Lit::Str(s)) => out.retry_ms = Some(millis(s)?),
                    ("ignore_location", Lit::Str(s)) => out.ignore_location.push(pattern(&name, s)?),
                    ("ignore_function", Lit::Str(s)) => out.ignore_function.push(pattern(&name, s)?),
                    ("ignore_top_function", Lit::Str(s)) => out.ignore_top_function.push(pattern(&name, s)?),
                    ("start_paused" | "retry" | "ignore_location" | "ignore_function" | "ignore_top_function", _) => {
                        return Err(syn::Error::new(lit.span(), format!("unexpected value for `{name}`")))
                    }
                    _ => return Err(syn::Error::new(pair.path.span(), KNOWN)),
                }
            }
            Meta::List(list) => return Err(syn::Error::new(list.span(), KNOWN)),
        }
    }
    out.runtime.check()?;
    if out.start_paused && out.runtime.multi_thread {
        return Err(syn::Error::new(Span::call_site(), "start_paused needs flavor = \"current_thread\""));
    }
    Ok(out)
}

/// An `ignore_*` pattern; an empty one would ignore every task, so the
/// guard could never fail.
fn pattern(name: &str, lit: &LitStr) -> syn::Result<String> {
    let text = lit.value();
    if text.trim().is_empty() {
        return Err(syn::Error::new(lit.span(), format!("an empty `{name}` would ignore every task")));
    }
    Ok(text)
}

/// `"500ms"`, `"2s"`, `"1m"`, `"0s"` as milliseconds.
fn millis(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        _ => return Err(syn::Error::new(lit.span(), "retry is a whole number of ms, s or m, e.g. \"500ms\"")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| syn::Error::new(lit.span(), "retry is a whole number of ms, s or m, e.g. \"500ms\""))
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_args(args)?;
    let (mut function, output) = runtime::sync_fn(item, "taskscope_agent::test")?;
    let (builder, workers) = args.runtime.builder();
    let paused = args.start_paused.then(|| quote!(builder.start_paused(true);));
    let mut options = quote!(::taskscope_agent::guard::Options::default());
    if args.leaked_only {
        options.extend(quote!(.leaked_only()));
    }
    if args.include_existing {
        options.extend(quote!(.include_existing()));
    }
    if let Some(ms) = args.retry_ms {
        options.extend(quote!(.retry_for(::core::time::Duration::from_millis(#ms))));
    }
    for p in &args.ignore_location {
        options.extend(quote!(.ignore_location(#p)));
    }
    for f in &args.ignore_function {
        options.extend(quote!(.ignore_function(#f)));
    }
    for f in &args.ignore_top_function {
        options.extend(quote!(.ignore_top_function(#f)));
    }
    let body = &function.block;
    let span = body.span();
    function.block = syn::parse2(quote_spanned! {span=> {
        let body = async move #body;
        let mut builder = #builder;
        builder.enable_all();
        #workers
        #paused
        // Naming the output lets `?` in the body infer its error type.
        let body: ::core::pin::Pin<&mut dyn ::core::future::Future<Output = #output>> =
            ::core::pin::pin!(body);
        ::taskscope_agent::__private::test(builder, #options, body)
    }})?;
    let attrs = std::mem::take(&mut function.attrs);
    Ok(quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #function
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_as_tokio_test_takes_them_and_the_guards_options() {
        assert_eq!(parse_args(quote!()).unwrap(), Args::default());
        let args = parse_args(quote!(
            flavor = "multi_thread",
            worker_threads = 2,
            leaked_only,
            retry = "2s",
            ignore_location = "src/a.rs",
            ignore_location = "src/b.rs",
            ignore_function = "app::serve"
        ))
        .unwrap();
        assert!(args.runtime.multi_thread && args.leaked_only && !args.include_existing);
        assert_eq!(args.runtime.worker_threads, Some(2));
        assert_eq!(args.retry_ms, Some(2000));
        assert_eq!(args.ignore_location, ["src/a.rs", "src/b.rs"]);
        assert_eq!(args.ignore_function, ["app::serve"]);
        assert_eq!(parse_args(quote!(retry = "250ms")).unwrap().retry_ms, Some(250));
        assert_eq!(parse_args(quote!(retry = "0s")).unwrap().retry_ms, Some(0));
    }

    #[test]
    fn bad_arguments_are_errors_that_say_why() {
        let error = |args: TokenStream| parse_args(args).unwrap_err().to_string();
        assert!(error(quote!(leaky_only)).contains("takes `flavor`"));
        assert!(error(quote!(retry = "soon")).contains("whole number"));
        assert!(error(quote!(retry = "5h")).contains("whole number"));
        assert!(error(quote!(retry = 5)).contains("unexpected value"));
        assert!(error(quote!(worker_threads = 2)).contains("multi_thread"));
        assert!(error(quote!(flavor = "multi_thread", start_paused)).contains("current_thread"));
        assert!(error(quote!(ignore_location = "")).contains("would ignore every task"));
        assert!(error(quote!(ignore_top_function = " ")).contains("would ignore every task"));
        assert!(error(quote!(ignore(x))).contains("takes `flavor`"));
    }

    #[test]
    fn the_expansion_is_a_test_that_runs_the_body_under_a_guard() {
        let tokens = expand(
            quote!(ignore_function = "app::serve"),
            quote!(
                #[should_panic]
                async fn leaks() -> Result<(), E> {
                    Ok(())
                }
            ),
        )
        .unwrap();
        let text = tokens.to_string();
        assert!(text.starts_with("# [:: core :: prelude :: v1 :: test] # [should_panic] fn leaks"), "{text}");
        assert!(text.contains(":: taskscope_agent :: __private :: test (builder"), "{text}");
        assert!(text.contains(". ignore_function (\"app::serve\")"), "{text}");
        assert!(text.contains("new_current_thread"), "{text}");
        let error = expand(
            quote!(),
            quote!(
                fn plain() {}
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("async fn"), "{error}");
    }
}
