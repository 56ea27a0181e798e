package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/google/licenseclassifier/v2/assets"
)

// modulesMarker is the line of packaging/copyright.in that the generated
// paragraphs replace.
const modulesMarker = "@GO_MODULES@"

// sharedLicences are given by name only in a module's paragraph: the
// template has their stand-alone License paragraph (the text itself is in
// /usr/share/common-licenses and in the package's LICENSE). Every other
// licence is copied in full from the module, since its text names the
// module's own copyright holders.
var sharedLicences = map[string]bool{"Apache-2.0": true}

// dep5Names maps the classifier's SPDX identifiers to the short names of
// the copyright format 1.0 where they differ.
var dep5Names = map[string]string{
	"MIT":          "Expat",
	"BSD-2-Clause": "BSD-2-clause",
	"BSD-3-Clause": "BSD-3-clause",
	"BSD-4-Clause": "BSD-4-clause",
}

// A licence or notice file: LICENSE, LICENSE.txt, LICENCE-MIT, COPYING...
var (
	licenceFileName = regexp.MustCompile(`(?i)^(un)?(licen[cs]e|copying)([._-].*)?$`)
	noticeFileName  = regexp.MustCompile(`(?i)^notice([._-].*)?$`)
	// A copyright statement in a NOTICE file.
	noticeCopyright = regexp.MustCompile(`(?i)^\s*(copyright|\(c\)|©)\b.*\d{4}`)
)

// goPackage is what go list -json says about one package.
type goPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *goModule
}

type goModule struct {
	Path    string
	Version string
	Dir     string
	Main    bool
	Replace *goModule
}

// deps is the package graph of the binary and the toolchain that builds it.
type deps struct {
	Packages  []goPackage
	GoRoot    string
	GoVersion string
}

// listDeps asks the go command for every package linked into pkg when it is
// built for goos/goarch without cgo, as the package build does.
func listDeps(root, pkg, goos, goarch string) (*deps, error) {
	env := append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	goCmd := func(args ...string) ([]byte, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	out, err := goCmd("list", "-deps", "-json=ImportPath,Dir,Standard,Module", pkg)
	if err != nil {
		return nil, err
	}
	d := &deps{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		d.Packages = append(d.Packages, p)
	}
	env2, err := goCmd("env", "GOROOT", "GOVERSION")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(env2)), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("go env GOROOT GOVERSION: %q", env2)
	}
	d.GoRoot, d.GoVersion = lines[0], lines[1]
	return d, nil
}

// classifier identifies licences and copyright statements.
type classifier interface {
	identify(text []byte) (ids, copyright []string)
}

type licenceClassifier struct {
	match func([]byte) []match
}

type match struct {
	name, kind         string
	startLine, endLine int
}

func newClassifier() (classifier, error) {
	c, err := assets.DefaultClassifier()
	if err != nil {
		return nil, fmt.Errorf("licence classifier: %w", err)
	}
	return licenceClassifier{match: func(b []byte) []match {
		var ms []match
		for _, m := range c.Match(b).Matches {
			ms = append(ms, match{m.Name, m.MatchType, m.StartLine, m.EndLine})
		}
		return ms
	}}, nil
}

// identify returns the licences found in text (in the order they appear)
// and its copyright statements.
func (lc licenceClassifier) identify(text []byte) (ids, copyright []string) {
	ms := lc.match(text)
	slices.SortStableFunc(ms, func(a, b match) int { return a.startLine - b.startLine })
	lines := strings.Split(string(text), "\n")
	for _, m := range ms {
		switch m.kind {
		case "License":
			if !slices.Contains(ids, m.name) {
				ids = append(ids, m.name)
			}
		case "Copyright":
			for i := m.startLine; i <= m.endLine && i-1 < len(lines); i++ {
				if s := strings.TrimSpace(lines[i-1]); s != "" && !slices.Contains(copyright, s) {
					copyright = append(copyright, s)
				}
			}
		}
	}
	return ids, copyright
}

// licenceFile is one licence file of a module.
type licenceFile struct {
	Rel       string // path inside the module
	Text      string
	IDs       []string // SPDX identifiers
	Copyright []string
}

// module is one Go module (or the standard library, Path "") linked in.
type module struct {
	Path    string
	Version string
	Replace string // "path version" of the replacement, if any
	Files   string // the Files: pattern of its root, "vendor/PATH" or "GOROOT/src"
	Dirs    []licenceDir
	Notice  string
}

// licenceDir is a directory of a module with licence files: the module
// root, or a directory inside it under another licence (code copied in
// from elsewhere). Each gets its own Files paragraph.
type licenceDir struct {
	Rel   string // "" for the module root
	Files []licenceFile
}

// describeModules finds, for every package of the graph, the licence file
// nearest to it (walking up to its module's root, as go-licenses does) and
// groups them per module, sorted by module path after the standard library.
func describeModules(d *deps, cl classifier) ([]*module, error) {
	byPath := map[string]*module{}
	var errs []error
	std := false
	for _, p := range d.Packages {
		if p.Standard {
			std = true
			continue
		}
		if p.Module == nil {
			errs = append(errs, fmt.Errorf("package %s is in no module", p.ImportPath))
			continue
		}
		if p.Module.Main {
			continue
		}
		m := byPath[p.Module.Path]
		dir := p.Module.Dir
		if r := p.Module.Replace; r != nil && r.Dir != "" {
			dir = r.Dir
		}
		if m == nil {
			m = &module{Path: p.Module.Path, Version: p.Module.Version, Files: "vendor/" + p.Module.Path}
			if r := p.Module.Replace; r != nil {
				m.Replace = strings.TrimSpace(r.Path + " " + r.Version)
			}
			notice, err := readNotice(dir)
			if err != nil {
				errs = append(errs, fmt.Errorf("module %s: %w", m.Path, err))
			}
			m.Notice = notice
			byPath[m.Path] = m
		}
		files, err := nearestLicences(p.Dir, dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("package %s (module %s): %w", p.ImportPath, m.Path, err))
			continue
		}
		for _, f := range files {
			rel, err := filepath.Rel(dir, f)
			if err != nil {
				return nil, err
			}
			rel = filepath.ToSlash(rel)
			dirRel := pathDir(rel)
			di := slices.IndexFunc(m.Dirs, func(d licenceDir) bool { return d.Rel == dirRel })
			if di < 0 {
				m.Dirs = append(m.Dirs, licenceDir{Rel: dirRel})
				di = len(m.Dirs) - 1
			}
			ld := &m.Dirs[di]
			if slices.ContainsFunc(ld.Files, func(l licenceFile) bool { return l.Rel == rel }) {
				continue
			}
			text, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ids, cr := cl.identify(text)
			if len(ids) == 0 {
				errs = append(errs, fmt.Errorf("module %s: %s: no licence recognised", m.Path, rel))
				continue
			}
			ld.Files = append(ld.Files, licenceFile{Rel: rel, Text: string(text), IDs: ids, Copyright: cr})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var mods []*module
	if std {
		text, err := os.ReadFile(filepath.Join(d.GoRoot, "LICENSE"))
		if err != nil {
			return nil, fmt.Errorf("the Go standard library's licence: %w", err)
		}
		ids, cr := cl.identify(text)
		if len(ids) == 0 {
			return nil, fmt.Errorf("%s: no licence recognised", filepath.Join(d.GoRoot, "LICENSE"))
		}
		mods = append(mods, &module{Version: d.GoVersion, Files: "GOROOT/src",
			Dirs: []licenceDir{{Files: []licenceFile{{Rel: "LICENSE", Text: string(text), IDs: ids, Copyright: cr}}}}})
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		m := byPath[p]
		// The root first: in DEP-5 the last paragraph that matches a file
		// applies, so the more specific directories come after it.
		slices.SortFunc(m.Dirs, func(a, b licenceDir) int { return strings.Compare(a.Rel, b.Rel) })
		for _, d := range m.Dirs {
			slices.SortFunc(d.Files, func(a, b licenceFile) int { return strings.Compare(a.Rel, b.Rel) })
		}
		mods = append(mods, m)
	}
	return mods, nil
}

// nearestLicences returns the licence files of the first directory, from
// dir up to the module root, that has any.
func nearestLicences(dir, moduleRoot string) ([]string, error) {
	moduleRoot = filepath.Clean(moduleRoot)
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		var found []string
		for _, e := range entries {
			if !e.IsDir() && licenceFileName.MatchString(e.Name()) {
				found = append(found, filepath.Join(d, e.Name()))
			}
		}
		if len(found) > 0 {
			return found, nil
		}
		if d == moduleRoot || !strings.HasPrefix(d, moduleRoot+string(filepath.Separator)) {
			return nil, fmt.Errorf("no licence file in %s or above it up to the module root", dir)
		}
	}
}

// readNotice returns the module's NOTICE file(s), which the Apache licence
// (section 4d) requires to be passed on.
func readNotice(moduleRoot string) (string, error) {
	entries, err := os.ReadDir(moduleRoot)
	if err != nil {
		return "", err
	}
	var texts []string
	for _, e := range entries {
		if !e.IsDir() && noticeFileName.MatchString(e.Name()) {
			b, err := os.ReadFile(filepath.Join(moduleRoot, e.Name()))
			if err != nil {
				return "", err
			}
			texts = append(texts, strings.TrimSpace(string(b)))
		}
	}
	return strings.Join(texts, "\n\n"), nil
}

// renderCopyright fills the template's marker line with one Files
// paragraph per module and checks the result against the format.
func renderCopyright(template string, mods []*module) (string, error) {
	var b strings.Builder
	for i, m := range mods {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(m.paragraphs())
	}
	lines := strings.Split(template, "\n")
	n := slices.Index(lines, modulesMarker)
	if n < 0 {
		return "", fmt.Errorf("the template has no line %s", modulesMarker)
	}
	out := strings.Join(lines[:n], "\n") + "\n" + strings.TrimSuffix(b.String(), "\n") + "\n" + strings.Join(lines[n+1:], "\n")
	out = strings.TrimRight(out, "\n") + "\n"
	if err := checkDEP5(out); err != nil {
		return "", err
	}
	return out, nil
}

// paragraphs are the module's Files paragraphs, one per licence directory.
func (m *module) paragraphs() string {
	var b strings.Builder
	for i, d := range m.Dirs {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(m.paragraph(i, d))
	}
	return b.String()
}

func (m *module) paragraph(i int, d licenceDir) string {
	var ids, copyright []string
	var inline []licenceFile
	for _, l := range d.Files {
		shared := true
		for _, id := range l.IDs {
			id = dep5Name(id)
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
			shared = shared && sharedLicences[id]
		}
		if !shared {
			inline = append(inline, l)
		}
		for _, c := range l.Copyright {
			if !slices.Contains(copyright, c) {
				copyright = append(copyright, c)
			}
		}
	}
	name := m.Path
	if name == "" {
		name = "the Go standard library"
	}
	if i == 0 {
		// The module's own statements, for licences (Apache's) that
		// carry none.
		for _, line := range strings.Split(m.Notice, "\n") {
			if s := strings.TrimSpace(line); noticeCopyright.MatchString(s) && !slices.Contains(copyright, s) {
				copyright = append(copyright, s)
			}
		}
	}
	if len(copyright) == 0 {
		copyright = []string{"the authors of " + name + " (its licence files name no holder)"}
	}
	files := m.Files
	if d.Rel != "" {
		files += "/" + d.Rel
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Files: %s/*\n", files)
	b.WriteString(field("Copyright", copyright[0], copyright[1:]))
	var text []string
	for i, l := range inline {
		if len(inline) > 1 {
			if i > 0 {
				text = append(text, "")
			}
			text = append(text, path.Base(l.Rel)+":", "")
		}
		text = append(text, strings.Split(strings.Trim(l.Text, "\n"), "\n")...)
	}
	b.WriteString(field("License", strings.Join(ids, " and "), text))
	rels := make([]string, len(d.Files))
	for i, l := range d.Files {
		rels[i] = l.Rel
	}
	var comment []string
	switch {
	case m.Path == "":
		comment = append(comment, fmt.Sprintf("The Go standard library and runtime, %s; licence from the Go distribution's LICENSE.", m.Version))
	case i == 0:
		c := fmt.Sprintf("Go module %s %s", m.Path, m.Version)
		if m.Replace != "" {
			c += ", replaced by " + m.Replace + " (bounce-milter's patched copy; its README lists the changes)"
		}
		comment = append(comment, c+"; licence from "+strings.Join(rels, ", ")+".")
	default:
		comment = append(comment, fmt.Sprintf("Part of Go module %s %s under its own licence, from %s.", m.Path, m.Version, strings.Join(rels, ", ")))
	}
	if i == 0 && m.Notice != "" {
		comment = append(comment, "", "Its NOTICE file:", "")
		comment = append(comment, strings.Split(m.Notice, "\n")...)
	}
	b.WriteString(field("Comment", comment[0], comment[1:]))
	return b.String()
}

// pathDir is path.Dir with "" for the top.
func pathDir(rel string) string {
	if d := path.Dir(rel); d != "." {
		return d
	}
	return ""
}

func dep5Name(spdx string) string {
	if n, ok := dep5Names[spdx]; ok {
		return n
	}
	return spdx
}

// field formats a deb822 field: the first line after the name, the others
// indented by one space, empty ones as " .".
func field(name, first string, more []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", name, cleanLine(first))
	for _, l := range more {
		l = cleanLine(l)
		if strings.TrimSpace(l) == "" {
			b.WriteString(" .\n")
			continue
		}
		if strings.TrimSpace(l) == "." {
			l = "[.]" // a lone dot would read as an empty line
		}
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}

func cleanLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(s, "\t", "        ")
	return strings.TrimRight(s, " ")
}

// checkDEP5 checks the structure of a machine-readable copyright file: a
// header paragraph with Format, Files paragraphs with Copyright and
// License, a licence text or a stand-alone License paragraph for every
// short name, and each stand-alone name once.
func checkDEP5(text string) error {
	paras, err := parseDeb822(text)
	if err != nil {
		return err
	}
	if len(paras) < 2 {
		return errors.New("copyright: want a header and at least one Files paragraph")
	}
	if !strings.HasPrefix(paras[0].get("Format"), "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/") {
		return fmt.Errorf("copyright: header Format is %q", paras[0].get("Format"))
	}
	standalone := map[string]bool{}
	var needed []string
	for _, p := range paras[1:] {
		lic, ok := p.fields["License"]
		if !ok {
			return fmt.Errorf("copyright: paragraph at line %d has no License", p.line)
		}
		name := strings.TrimSpace(strings.SplitN(lic, "\n", 2)[0])
		if name == "" {
			return fmt.Errorf("copyright: paragraph at line %d has an empty License name", p.line)
		}
		hasText := strings.Contains(lic, "\n")
		if _, isFiles := p.fields["Files"]; isFiles {
			if strings.TrimSpace(p.get("Copyright")) == "" {
				return fmt.Errorf("copyright: Files paragraph at line %d has no Copyright", p.line)
			}
			if !hasText {
				needed = append(needed, splitLicenceNames(name)...)
			}
			continue
		}
		if !hasText {
			return fmt.Errorf("copyright: stand-alone License %s at line %d has no text", name, p.line)
		}
		if standalone[name] {
			return fmt.Errorf("copyright: stand-alone License %s given twice", name)
		}
		standalone[name] = true
	}
	for _, n := range needed {
		if !standalone[n] {
			return fmt.Errorf("copyright: License %s is named without its text and has no stand-alone paragraph", n)
		}
	}
	return nil
}

func splitLicenceNames(expr string) []string {
	var names []string
	for _, f := range strings.Fields(expr) {
		if f != "and" && f != "or" && f != "," {
			names = append(names, strings.Trim(f, "(),"))
		}
	}
	return names
}

type paragraph struct {
	line   int
	fields map[string]string
}

func (p paragraph) get(name string) string { return p.fields[name] }

// parseDeb822 splits text into paragraphs of fields; continuation lines
// start with a space and are kept, one per line, without it.
func parseDeb822(text string) ([]paragraph, error) {
	var paras []paragraph
	var cur *paragraph
	last := ""
	for i, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		n := i + 1
		switch {
		case strings.TrimSpace(line) == "":
			if strings.ContainsAny(line, " \t") {
				return nil, fmt.Errorf("copyright: line %d: blank line with spaces (use \" .\")", n)
			}
			cur, last = nil, ""
		case line[0] == ' ' || line[0] == '\t':
			if cur == nil || last == "" {
				return nil, fmt.Errorf("copyright: line %d: continuation line outside a field", n)
			}
			cur.fields[last] += "\n" + line[1:]
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("copyright: line %d: not a field: %q", n, line)
			}
			if cur == nil {
				paras = append(paras, paragraph{line: n, fields: map[string]string{}})
				cur = &paras[len(paras)-1]
			}
			if _, dup := cur.fields[name]; dup {
				return nil, fmt.Errorf("copyright: line %d: field %s twice in one paragraph", n, name)
			}
			cur.fields[name] = strings.TrimSpace(value)
			last = name
		}
	}
	return paras, nil
}
