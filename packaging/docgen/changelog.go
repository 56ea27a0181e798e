package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// CHANGELOG.md follows "Keep a Changelog": a "## [Unreleased]" section on
// top, then "## [1.2.3] - 2026-12-01" sections, newest first, each with
// "### Added"-style groups of "- " items. The Debian changelog has one
// entry per section; the unreleased section becomes the entry of the
// version being built (a development build), unless CHANGELOG.md already
// has a section for that version (a release build).

var (
	sectionHeading = regexp.MustCompile(`^## +\[?([^\]\s]+)\]?(?: +[-–] +(\d{4}-\d{2}-\d{2}))? *$`)
	groupHeading   = regexp.MustCompile(`^### +(.+?) *$`)
	listItem       = regexp.MustCompile(`^( *)[-*+] +(.*)$`)
	linkDefinition = regexp.MustCompile(`^\[[^\]]+\]: +\S+`)
	debianVersion  = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// release is one section of CHANGELOG.md.
type release struct {
	Version string // "" for Unreleased
	Date    time.Time
	Blocks  []block
}

// block is a group heading, a list item (Depth 0, 1, ...) or a paragraph
// (Depth -1), with its lines joined.
type block struct {
	Heading bool
	Depth   int
	Text    string
}

func parseChangelog(md string) ([]release, error) {
	var rels []release
	var cur *release
	var open *block // the item or paragraph that continuation lines extend
	for i, line := range strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(line, "## ") {
			m := sectionHeading.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: want \"## [VERSION] - YYYY-MM-DD\" or \"## [Unreleased]\": %q", n, line)
			}
			r := release{}
			if !strings.EqualFold(m[1], "unreleased") {
				r.Version = strings.TrimPrefix(m[1], "v")
				if !debianVersion.MatchString(r.Version) {
					return nil, fmt.Errorf("line %d: version %q is not a package version", n, m[1])
				}
				if m[2] == "" {
					return nil, fmt.Errorf("line %d: release %s has no date", n, r.Version)
				}
				d, err := time.Parse("2006-01-02", m[2])
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", n, err)
				}
				r.Date = d
			} else if len(rels) > 0 {
				return nil, fmt.Errorf("line %d: the Unreleased section must come first", n)
			}
			if len(rels) > 0 && r.Version != "" && rels[len(rels)-1].Version != "" && r.Date.After(rels[len(rels)-1].Date) {
				return nil, fmt.Errorf("line %d: release %s is dated after the one above it; newest first", n, r.Version)
			}
			for _, o := range rels {
				if r.Version != "" && o.Version == r.Version {
					return nil, fmt.Errorf("line %d: release %s listed twice", n, r.Version)
				}
			}
			rels = append(rels, r)
			cur, open = &rels[len(rels)-1], nil
			continue
		}
		if cur == nil || linkDefinition.MatchString(line) {
			continue // the title and introduction, link targets
		}
		switch {
		case trimmed == "":
			open = nil
		case groupHeading.MatchString(line):
			cur.Blocks = append(cur.Blocks, block{Heading: true, Text: groupHeading.FindStringSubmatch(line)[1]})
			open = nil
		case strings.HasPrefix(trimmed, "#"):
			return nil, fmt.Errorf("line %d: only ## and ### headings are understood: %q", n, line)
		case listItem.MatchString(line):
			m := listItem.FindStringSubmatch(line)
			cur.Blocks = append(cur.Blocks, block{Depth: len(m[1]) / 2, Text: m[2]})
			open = &cur.Blocks[len(cur.Blocks)-1]
		case open != nil:
			open.Text += " " + trimmed
		default:
			cur.Blocks = append(cur.Blocks, block{Depth: -1, Text: trimmed})
			open = &cur.Blocks[len(cur.Blocks)-1]
		}
	}
	if len(rels) == 0 {
		return nil, errors.New(`no "## " section`)
	}
	return rels, nil
}

// debianChangelog renders the entries in the format of deb-changelog(5).
func debianChangelog(rels []release, pkg, version, maintainer string, epoch int64) (string, error) {
	version = strings.TrimPrefix(version, "v")
	if !debianVersion.MatchString(version) {
		return "", fmt.Errorf("version %q is not a native package version", version)
	}
	var b strings.Builder
	released := false
	for _, r := range rels {
		if r.Version == version {
			released = true
		}
	}
	reached := !released // a release build starts at its own section
	first := true
	for _, r := range rels {
		if !reached {
			if r.Version != version {
				continue // Unreleased, or sections newer than the build
			}
			reached = true
		}
		var v, dist string
		var date time.Time
		if r.Version == "" {
			v, dist, date = version, "UNRELEASED", time.Unix(epoch, 0)
		} else {
			v, dist, date = r.Version, "unstable", r.Date
		}
		if !first {
			b.WriteString("\n")
		}
		first = false
		fmt.Fprintf(&b, "%s (%s) %s; urgency=medium\n\n", pkg, v, dist)
		body := renderBlocks(r.Blocks)
		if body == "" {
			body = "  * No changes listed in CHANGELOG.md.\n"
		}
		b.WriteString(body)
		fmt.Fprintf(&b, "\n -- %s  %s\n", maintainer, date.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	return b.String(), nil
}

// renderBlocks writes the items as Debian changelog bullets: "  * " for
// groups and top-level items, "    - " and deeper for items under a group
// or nested, wrapped to stay under lintian's 80 columns.
func renderBlocks(blocks []block) string {
	var b strings.Builder
	inGroup := false
	for _, bl := range blocks {
		switch {
		case bl.Heading:
			inGroup = true
			wrap(&b, "  * ", "    ", bl.Text+":")
		default:
			depth := bl.Depth
			if depth < 0 {
				depth = 0
			}
			if inGroup {
				depth++
			}
			if depth == 0 {
				wrap(&b, "  * ", "    ", bl.Text)
				continue
			}
			marks := []string{"-", "+", "o"}
			indent := strings.Repeat("  ", depth+1)
			wrap(&b, indent+marks[(depth-1)%len(marks)]+" ", indent+"  ", bl.Text)
		}
	}
	return b.String()
}

const changelogWidth = 78

func wrap(b *strings.Builder, first, rest, text string) {
	prefix := first
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(prefix)+len(line)+1+len(w) > changelogWidth {
			b.WriteString(prefix + line + "\n")
			prefix, line = rest, ""
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	b.WriteString(prefix + line + "\n")
}
