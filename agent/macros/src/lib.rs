//! `#[taskscope_agent::main]`: `#[tokio::main]` for the agent's lean mode;
//! `#[taskscope_agent::test]` (`guarded_test`, in `guarded`): `#[tokio::test]`
//! under the agent's test guard.
//!
//! Why a macro: the lean mode records through tokio's runtime hooks, which
//! are set on the runtime's `Builder`, and `#[tokio::main]` builds its runtime
//! where the program cannot reach the builder. A program that wants the mode
//! that can be left on had to write its `main` out by hand; with this
//! attribute in place of `#[tokio::main]` the embedding stays one line.
//!
//! The expansion builds the runtime as `#[tokio::main]` does (`enable_all`,
//! the same `flavor` and `worker_threads` arguments) but through
//! `taskscope_agent::build_runtime`, and blocks on the function's body. Only
//! the paths `::taskscope_agent::...` are named, so the program needs no
//! `tokio` import for it.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{MetaNameValue, Token};

mod guarded;
mod runtime;

use runtime::Runtime;

/// `#[tokio::test]` under the taskscope agent's test guard: the test fails
/// when it leaves tasks behind. See `taskscope_agent::guard`.
///
/// ```ignore
/// #[taskscope_agent::test(ignore_function = "my_crate::ticker")]
/// async fn serves_and_cleans_up() {
///     // ... the test ...
/// }
/// ```
#[proc_macro_attribute]
pub fn guarded_test(args: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    match guarded::expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Marks an `async fn` (usually `main`) to run on a tokio runtime recorded by
/// the taskscope agent's lean mode. Takes `#[tokio::main]`'s runtime
/// arguments: `flavor = "multi_thread"` (the default) or `"current_thread"`,
/// and `worker_threads = N` (multi-thread only).
///
/// ```ignore
/// #[taskscope_agent::main]
/// async fn main() {
///     // ... the program ...
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Reads `flavor = "..."` and `worker_threads = N`; anything else is an
/// error pointing at it.
fn parse_args(args: TokenStream) -> syn::Result<Runtime> {
    let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args)?;
    let mut runtime = Runtime { multi_thread: true, worker_threads: None };
    for pair in pairs {
        let name = pair.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
        if !runtime.read(&name, runtime::literal(&pair.value)?)? {
            return Err(syn::Error::new(
                pair.path.span(),
                "unknown argument: taskscope_agent::main takes `flavor` and `worker_threads`",
            ));
        }
    }
    runtime.check()?;
    Ok(runtime)
}

/// The function, made synchronous, building its runtime through the agent.
fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let runtime = parse_args(args)?;
    let (mut function, output) = runtime::sync_fn(item, "taskscope_agent::main")?;
    let (builder, workers) = runtime.builder();
    let body = &function.block;
    let span = body.span();
    function.block = syn::parse2(quote_spanned! {span=> {
        let body = async move #body;
        let mut builder = #builder;
        builder.enable_all();
        #workers
        // As `#[tokio::main]`: a runtime that cannot be built ends the program.
        #[allow(clippy::expect_used)]
        let runtime = ::taskscope_agent::build_runtime(&mut builder)
            .expect("Failed building the Runtime");
        // Naming the output lets `?` in the body infer its error type.
        let body: ::core::pin::Pin<&mut dyn ::core::future::Future<Output = #output>> =
            ::core::pin::pin!(body);
        runtime.block_on(::taskscope_agent::__private::main_future(body))
    }})?;
    Ok(quote!(#function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_as_tokio_main_takes_them() {
        assert_eq!(parse_args(quote!()).unwrap(), Runtime { multi_thread: true, worker_threads: None });
        assert_eq!(
            parse_args(quote!(flavor = "current_thread")).unwrap(),
            Runtime { multi_thread: false, worker_threads: None }
        );
        assert_eq!(
            parse_args(quote!(flavor = "multi_thread", worker_threads = 3)).unwrap(),
            Runtime { multi_thread: true, worker_threads: Some(3) }
        );
    }

    #[test]
    fn bad_arguments_are_errors_that_say_why() {
        let error = |args: TokenStream| parse_args(args).unwrap_err().to_string();
        assert!(error(quote!(flavor = "threaded")).contains("multi_thread"));
        assert!(error(quote!(workers = 2)).contains("unknown argument"));
        assert!(error(quote!(worker_threads = 0)).contains("at least 1"));
        assert!(error(quote!(worker_threads = "2")).contains("unexpected value"));
        assert!(error(quote!(flavor = "current_thread", worker_threads = 2)).contains("multi_thread"));
    }

    #[test]
    fn only_async_functions() {
        let error = expand(
            quote!(),
            quote!(
                fn main() {}
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("async fn"), "{error}");
    }

    #[test]
    fn the_expansion_builds_through_the_agent() {
        let tokens = expand(
            quote!(worker_threads = 2),
            quote!(
                async fn main() -> Result<(), E> {
                    Ok(())
                }
            ),
        )
        .unwrap();
        let text = tokens.to_string();
        assert!(text.starts_with("fn main () -> Result < () , E >"), "{text}");
        assert!(text.contains(":: taskscope_agent :: build_runtime (& mut builder)"), "{text}");
        assert!(text.contains("new_multi_thread"), "{text}");
        assert!(text.contains("worker_threads (2usize)"), "{text}");
        assert!(text.contains("Output = Result < () , E >"), "{text}");
    }
}
