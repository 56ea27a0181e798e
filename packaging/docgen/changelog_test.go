package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const sampleChangelog = `# Changelog

Intro text, not an entry.

## [Unreleased]

### Added

- A new thing that is described at some length so that the line has to be
  wrapped before the eightieth column of the Debian changelog, twice over if
  need be.
  - A nested detail.

### Fixed

- A bug.

## [1.1.0] - 2026-11-02

- Second release.

## [v1.0.0] - 2026-10-01

First release, a paragraph.

[Unreleased]: https://github.com/bounce-milter/bounce-milter/compare/v1.1.0...HEAD
`

const maint = "Test Builder <builder@example.org>"

// A development build: the Unreleased changes under the build's version,
// UNRELEASED, dated by SOURCE_DATE_EPOCH, then the releases.
func TestDevelopmentBuildChangelog(t *testing.T) {
	rels, err := parseChangelog(sampleChangelog)
	if err != nil {
		t.Fatal(err)
	}
	got, err := debianChangelog(rels, "bounce-milter", "1.1.0+3.gabcdef0", maint, 1795973746)
	if err != nil {
		t.Fatal(err)
	}
	want := `bounce-milter (1.1.0+3.gabcdef0) UNRELEASED; urgency=medium

  * Added:
    - A new thing that is described at some length so that the line has to be
      wrapped before the eightieth column of the Debian changelog, twice over
      if need be.
      + A nested detail.
  * Fixed:
    - A bug.

 -- Test Builder <builder@example.org>  Sun, 29 Nov 2026 17:35:46 +0000

bounce-milter (1.1.0) unstable; urgency=medium

  * Second release.

 -- Test Builder <builder@example.org>  Mon, 02 Nov 2026 00:00:00 +0000

bounce-milter (1.0.0) unstable; urgency=medium

  * First release, a paragraph.

 -- Test Builder <builder@example.org>  Thu, 01 Oct 2026 00:00:00 +0000
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	for _, line := range strings.Split(got, "\n") {
		if len(line) >= 80 && !strings.HasPrefix(line, " -- ") {
			t.Errorf("line of %d columns (lintian: debian-changelog-line-too-long): %q", len(line), line)
		}
	}
	parseWithDpkg(t, got, "1.1.0+3.gabcdef0")
}

// A release build (the tag's version has a section): that section heads
// the changelog; Unreleased and anything newer are left out.
func TestReleaseBuildChangelog(t *testing.T) {
	rels, err := parseChangelog(sampleChangelog)
	if err != nil {
		t.Fatal(err)
	}
	got, err := debianChangelog(rels, "bounce-milter", "v1.0.0", maint, 1795973746)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "bounce-milter (1.0.0) unstable; urgency=medium\n\n  * First release, a paragraph.\n") ||
		strings.Contains(got, "1.1.0") || strings.Contains(got, "A bug") {
		t.Errorf("release build changelog:\n%s", got)
	}
	parseWithDpkg(t, got, "1.0.0")
}

func TestChangelogErrors(t *testing.T) {
	for name, md := range map[string]string{
		"no sections":         "# Changelog\n\nnothing yet\n",
		"no date":             "## [1.0.0]\n- x\n",
		"bad heading":         "## Version one\n- x\n",
		"unreleased not top":  "## [1.0.0] - 2026-01-01\n- x\n## [Unreleased]\n- y\n",
		"not newest first":    "## [1.0.0] - 2026-01-01\n- x\n## [1.1.0] - 2026-02-01\n- y\n",
		"listed twice":        "## [1.0.0] - 2026-02-01\n- x\n## [1.0.0] - 2026-01-01\n- y\n",
		"hyphen in version":   "## [1.0.0-1] - 2026-01-01\n- x\n",
		"heading level four":  "## [Unreleased]\n#### Deep\n- x\n",
		"impossible date":     "## [1.0.0] - 2026-02-30\n- x\n",
		"version not numeric": "## [next] - 2026-01-01\n- x\n",
	} {
		if _, err := parseChangelog(md); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	rels, err := parseChangelog("## [Unreleased]\n- x\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := debianChangelog(rels, "p", "1.0.0-2", maint, 0); err == nil {
		t.Error("a non-native version (with a hyphen) was accepted")
	}
}

// The CHANGELOG.md of this repository converts.
func TestRepositoryChangelog(t *testing.T) {
	md, err := os.ReadFile("../../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	rels, err := parseChangelog(string(md))
	if err != nil {
		t.Fatal(err)
	}
	got, err := debianChangelog(rels, "bounce-milter", "0.1.0~git1.gabcdef0", maint, 1795973746)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "No changes listed") {
		t.Error("the Unreleased section of CHANGELOG.md is empty")
	}
	parseWithDpkg(t, got, "0.1.0~git1.gabcdef0")
}

// parseWithDpkg checks the text with dpkg's own parser when it is here.
func parseWithDpkg(t *testing.T, text, version string) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-parsechangelog"); err != nil {
		t.Log("no dpkg-parsechangelog: format not checked by dpkg")
		return
	}
	f := filepath.Join(t.TempDir(), "changelog")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dpkg-parsechangelog", "-l", f, "-S", "Version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != version {
		t.Errorf("dpkg-parsechangelog: %v: %s (want version %s)", err, out, version)
	}
	out, err = exec.Command("dpkg-parsechangelog", "-l", f, "--all").CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") {
		t.Errorf("dpkg-parsechangelog --all: %v: %s", err, out)
	}
}
