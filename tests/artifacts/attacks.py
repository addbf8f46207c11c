"""Path shapes that try to leave an artifact root, shared by the path and store tests."""

TRAVERSAL_PATHS = [
    "../x",
    "a/../../x",
    "..",
    "a/..",
    "%2e%2e",
    "%2e%2e%2fetc",
    "%2E%2E/etc",
    "%252e%252e%252fetc",
    "%25252e%25252e%25252fetc",
    "..%2f..%2fetc",
    "a/%2e%2e/%2e%2e/x",
    "a%2f%2e%2e%2f%2e%2e%2fx",
    ".%2e/x",
]

BACKSLASH_PATHS = ["a\\..\\..\\x", "..\\x", "a\\b", "a%5c..%5cx"]

ABSOLUTE_PATHS = ["/etc/passwd", "//proc/self/root", "/", "%2fetc%2fpasswd", "C:\\x", "C:/x", "c:x"]

NUL_AND_CONTROL_PATHS = ["x%00.txt", "x\x00y", "x%2500y", "a\nb", "a\x1bb", "a%0db", "a\x7fb"]

QUERY_AND_FRAGMENT_PATHS = ["a?b", "a#b", "a%3fb", "a%23b", "?", "#/../x"]

ATTACK_PATHS = (
    TRAVERSAL_PATHS
    + BACKSLASH_PATHS
    + ABSOLUTE_PATHS
    + NUL_AND_CONTROL_PATHS
    + QUERY_AND_FRAGMENT_PATHS
)
