// A call that got a 401 has already sent the app to the sign-in page, which
// says why: nothing else should show that error. This is the one check.

/** True for the error of a call that sent the app to the sign-in page. */
export function isSignedOut(error) {
  return Boolean(error) && error.code === "signed_out";
}

/**
 * The one way to show a failure: `show(error)` unless it is a sign-out.
 * `catch (error) { unlessSignedOut(error, () => showApiError(form, error)) }`.
 */
export function unlessSignedOut(error, show) {
  if (!isSignedOut(error)) show(error);
}
