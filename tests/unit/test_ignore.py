"""imgforge.recipes.ignore and .matcher against the test tables of moby's pattern matcher.

Ported from github.com/moby/patternmatcher (patternmatcher_test.go: TestMatches and its
multi-pattern cases, matchTests (Go's own filepath.Match table), compileTests, and the
single-function tests; ignorefile/ignorefile_test.go: TestReadAll). Windows-only rows are
left out (imgforge reads POSIX paths).
"""

from __future__ import annotations

import pytest

from imgforge.recipes.ignore import Ignore, read_patterns
from imgforge.recipes.matcher import PatternError, PatternMatcher, go_clean, go_regex


def matches(file: str, patterns: list[str]) -> bool:
    """patternmatcher.MatchesOrParentMatches (the package function)."""
    matcher = PatternMatcher.new(patterns)
    file = go_clean(file)
    return file != "." and matcher.matches_or_parent_matches(file)


def parent_results(matcher: PatternMatcher, text: str) -> bool:
    """MatchesUsingParentResults, fed the parent directories' results as a walk does."""
    parent = go_clean(text.rsplit("/", 1)[0]) if "/" in text else "."  # Go's filepath.Dir
    parents = parent.split("/") if parent != "." else []
    info = None
    for depth in range(1, len(parents) + 1):
        _, info = matcher.matches_using_parent_results("/".join(parents[:depth]), info)
    return matcher.matches_using_parent_results(text, info)[0]


# TestMatches: (pattern, text, pass)
MATCHES = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**/", "file/", True),
    ("**", "/", True), ("**/", "/", True), ("**", "dir/file", True), ("**/", "dir/file", True),
    ("**", "dir/file/", True), ("**/", "dir/file/", True), ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True), ("dir/**", "dir/file", True), ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True), ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True), ("**file", "file", True),
    ("**file", "dir/file", True), ("**/file", "dir/file", True), ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True), ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True), ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True), ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True), (".*", ".foo", True), (".*", "foo", False),
    ("abc.def", "abcdef", False), ("abc.def", "abc.def", True), ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False), ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True), ("abc/**", "abc", False),
    ("abc/**", "abc/def", True), ("abc/**", "abc/def/ghi", True), ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False), ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True),
]
MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
]
# matchTests (Go's filepath.Match table): (pattern, name, match, bad pattern)
MATCH = [
    ("abc", "abc", True, False), ("*", "abc", True, False), ("*c", "abc", True, False),
    ("a*", "a", True, False), ("a*", "abc", True, False), ("a*", "ab/c", True, False),
    ("a*/b", "abc/b", True, False), ("a*/b", "a/c/b", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True, False), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False, False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True, False), ("a*b?c*x", "abxbbxdbxebxczzy", False, False),
    ("ab[c]", "abc", True, False), ("ab[b-d]", "abc", True, False),
    ("ab[e-g]", "abc", False, False),
    ("ab[^c]", "abc", False, False), ("ab[^b-d]", "abc", False, False),
    ("ab[^e-g]", "abc", True, False), ("a\\*b", "a*b", True, False), ("a\\*b", "ab", False, False),
    ("a?b", "a☺b", True, False), ("a[^a]b", "a☺b", True, False), ("a???b", "a☺b", False, False),
    ("a[^a][^a][^a]b", "a☺b", False, False), ("[a-ζ]*", "α", True, False),
    ("*[a-ζ]", "A", False, False), ("a?b", "a/b", False, False), ("a*b", "a/b", False, False),
    ("[\\]a]", "]", True, False), ("[\\-]", "-", True, False), ("[x\\-]", "x", True, False),
    ("[x\\-]", "-", True, False), ("[x\\-]", "z", False, False), ("[\\-x]", "x", True, False),
    ("[\\-x]", "-", True, False), ("[\\-x]", "a", False, False),
    ("[]a]", "]", False, True), ("[-]", "-", False, True), ("[x-]", "x", False, True),
    ("[x-]", "-", False, True), ("[x-]", "z", False, True), ("[-x]", "x", False, True),
    ("[-x]", "-", False, True), ("[-x]", "a", False, True), ("\\", "a", False, True),
    ("[a-b-c]", "a", False, True), ("[", "a", False, True), ("[^", "a", False, True),
    ("[^bc", "a", False, True), ("a[", "a", False, True), ("a[", "ab", False, True),
    ("*x", "xxx", True, False),
]
# compileTests: (pattern, kind, regexp on "/" systems)
COMPILE = [
    ("*", "regexp", "^[^/]*$"), ("file*", "regexp", "^file[^/]*$"),
    ("*file", "regexp", "^[^/]*file$"), ("a*/b", "regexp", "^a[^/]*/b$"),
    ("**", "suffix", ""), ("**/**", "regexp", "^(.*/)?.*$"), ("dir/**", "prefix", ""),
    ("**/dir", "suffix", ""), ("**/dir2/*", "regexp", "^(.*/)?dir2/[^/]*$"),
    ("**/dir2/**", "regexp", "^(.*/)?dir2/.*$"), ("**file", "suffix", ""),
    ("**/file*txt", "regexp", "^(.*/)?file[^/]*txt$"),
    ("**/**/*.txt", "regexp", "^(.*/)?(.*/)?[^/]*\\.txt$"), ("a[b-d]e", "regexp", "^a[b-d]e$"),
    (".*", "regexp", "^\\.[^/]*$"), ("abc.def", "exact", ""), ("abc?def", "regexp", "^abc[^/]def$"),
    ("**/foo/bar", "suffix", ""), ("a(b)c/def", "exact", ""), ("a.|)$(}+{bc", "exact", ""),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact", ""),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), MATCHES)
def test_matches_table(pattern: str, text: str, expected: bool) -> None:
    matcher = PatternMatcher.new([pattern])
    assert matcher.matches_or_parent_matches(text) is expected
    assert parent_results(matcher, text) is expected
    assert matcher.matches_using_parent_results(text, None)[0] is expected


@pytest.mark.parametrize(("patterns", "text", "expected"), MULTI)
def test_multi_pattern_table(patterns: list[str], text: str, expected: bool) -> None:
    matcher = PatternMatcher.new(patterns)
    assert matcher.matches_or_parent_matches(text) is expected
    assert parent_results(matcher, text) is expected


@pytest.mark.parametrize(("pattern", "name", "expected", "bad"), MATCH)
def test_filepath_match_table(pattern: str, name: str, expected: bool, bad: bool) -> None:
    if bad:
        with pytest.raises(PatternError):
            matches(name, [pattern])
    else:
        assert matches(name, [pattern]) is expected


@pytest.mark.parametrize(("pattern", "kind", "regexp"), COMPILE)
def test_compile_table(pattern: str, kind: str, regexp: str) -> None:
    got_kind, got_regexp = go_regex(go_clean(pattern))
    assert got_kind == kind
    if kind == "regexp":
        assert got_regexp == regexp


@pytest.mark.parametrize(
    ("file", "patterns", "expected"),
    [
        ("fileutils.go", ["*"], True),  # TestWildcardMatches
        ("fileutils.go", ["*.go"], True),  # TestPatternMatches
        ("fileutils.go", ["!fileutils.go", "*.go"], True),
        ("docs/README.md", ["docs", "!docs/README.md"], False),
        ("docs/README.md", ["docs/", "!docs/README.md"], False),
        ("docs/README.md", ["docs/*", "!docs/README.md"], False),
        ("fileutils.go", ["*.go", "!fileutils.go"], False),
        (".", ["*.go"], False),  # TestExclusionPatternMatchesWholeDirectory
        ("/any/path/there", [], False),  # TestMatchesWithNoPatterns
    ],
)
def test_single_cases(file: str, patterns: list[str], expected: bool) -> None:
    assert matches(file, patterns) is expected


@pytest.mark.parametrize("patterns", [["!"], ["["], ["[Local-Only]/"]])
def test_refused_patterns(patterns: list[str]) -> None:
    """TestSingleExclamationError, TestMatchesWithMalformedPatterns, moby/moby#52203."""
    with pytest.raises(PatternError):
        PatternMatcher.new(patterns)


def test_clean_patterns() -> None:
    """TestCleanPatterns*: empty patterns dropped, `!` with spaces around still an exception."""
    assert len(PatternMatcher.new(["docs", "config", ""]).patterns) == 2
    for patterns in (["docs", "!docs/README.md"], ["docs", "  !docs/README.md"],
                     ["docs", "!docs/README.md  "]):
        assert PatternMatcher.new(patterns).exclusions


def test_read_all() -> None:
    """TestReadAll (ignorefile_test.go)."""
    assert read_patterns(b"") == []
    content = (
        b"test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    )
    assert read_patterns(content) == [
        "test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xef\xbb\xbfsecret.txt\n", ["secret.txt"]),  # a UTF-8 BOM is not part of the pattern
        (b"#x\r\nsecret\r\n", ["secret"]),  # CRLF: one \r dropped per line
        (b"a/../secret\n", ["secret"]),  # filepath.Clean
        (b"../secret\n", ["../secret"]),  # a relative .. stays (and never matches)
        (b"/../secret\n", ["secret"]),  # a rooted .. vanishes, then the / goes
        (b"  !  /x/./y/  \n", ["!x/y"]),
        (b" # not a comment\n", ["# not a comment"]),  # only a leading # is a comment
    ],
)
def test_read_all_cleaning(data: bytes, expected: list[str]) -> None:
    assert read_patterns(data) == expected


def test_an_overlong_line_is_refused_as_docker_fails_on_it() -> None:
    with pytest.raises(PatternError):
        read_patterns(b"x" * 65536 + b"\n")
    assert read_patterns(b"x" * 65535 + b"\n") == ["x" * 65535]


@pytest.mark.parametrize(
    ("rules", "path", "sent"),
    [
        ("**/*.log\n!app/data/keep.log\n", "app/data/keep.log", True),
        ("**/*.log\n!app/data/keep.log\n", "app/data/deep.log", False),
        ("app\n!app/main.py\n", "app/main.py", True),  # entered: an exception starts with app/
        ("app\n!**/main.py\n", "app/main.py", False),  # not entered: no exception under app/
        ("app/*\n!app/sub\n", "app/sub/x", True),
        ("[a-c]pp\n", "app/x", False),
        ("s[^a-z]cret\n", "s3cret", False),
        ("s[^a-z]cret\n", "secret", True),
    ],
)
def test_what_the_context_walk_sends(rules: str, path: str, sent: bool) -> None:
    assert Ignore.parse(rules.encode()).sends(path) is sent
