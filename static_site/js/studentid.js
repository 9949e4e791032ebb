// A student ID as the API takes it (STUDENT_ID_PATTERN in chalicelib/students.py):
// 1 to 64 of A-Z a-z 0-9 _ . - : and not only dots ("." and ".." cannot be
// reached in a URL path). The registration forms and the bulk import check it
// alike, before anything is sent.
export const STUDENT_ID_PATTERN = /^(?!\.+$)[A-Za-z0-9_.\-:]{1,64}$/;

/** What a form says of an ID the API would refuse. */
export const STUDENT_ID_RULE = "Use 1 to 64 letters, digits or . _ - : (no spaces or accents, not only dots).";

export function isStudentId(value) {
  return STUDENT_ID_PATTERN.test(value);
}
