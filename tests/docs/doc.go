// Package docs checks that the repository's documentation matches its code where a
// test can tell: what README.md lists must exist, and what exists must be listed.
package docs
