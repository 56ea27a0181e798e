package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	classifierOnce sync.Once
	sharedCl       classifier
	sharedClErr    error
)

// realClassifier loads the licence database once for all tests (about a
// second).
func realClassifier(t *testing.T) classifier {
	t.Helper()
	classifierOnce.Do(func() { sharedCl, sharedClErr = newClassifier() })
	if sharedClErr != nil {
		t.Fatal(sharedClErr)
	}
	return sharedCl
}

const mitText = `MIT License

Copyright (c) 2024 Jane Example

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTemplate(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../copyright.in")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A fake module cache: licences are found per package, nearest first, and
// a directory under its own licence gets its own paragraph after the
// module's; Apache modules are named, their NOTICE carried, MIT text
// copied.
func TestModulesFromFakeCache(t *testing.T) {
	root := t.TempDir()
	mitMod := filepath.Join(root, "example.org/mit@v1.0.0")
	writeFile(t, filepath.Join(mitMod, "LICENSE"), mitText)
	writeFile(t, filepath.Join(mitMod, "third_party/copied/COPYING"), strings.Replace(mitText, "2024 Jane Example", "2019 Someone Else", 1))
	apacheMod := filepath.Join(root, "example.org/apache@v2.1.0")
	apache, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(apacheMod, "LICENSE"), string(apache))
	writeFile(t, filepath.Join(apacheMod, "NOTICE"), "Example Apache thing\nCopyright 2015 The Example Authors\n")
	for _, d := range []string{"a/b", "third_party/copied/x"} {
		if err := os.MkdirAll(filepath.Join(mitMod, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(apacheMod, "api"), 0o755); err != nil {
		t.Fatal(err)
	}
	mit := &goModule{Path: "example.org/mit", Version: "v1.0.0", Dir: mitMod}
	ap := &goModule{Path: "example.org/apache", Version: "v2.1.0", Dir: apacheMod}
	d := &deps{GoRoot: runtimeGoRoot(t), GoVersion: "go1.99", Packages: []goPackage{
		{ImportPath: "fmt", Standard: true},
		{ImportPath: "example.org/mit/a/b", Dir: filepath.Join(mitMod, "a/b"), Module: mit},
		{ImportPath: "example.org/mit/third_party/copied/x", Dir: filepath.Join(mitMod, "third_party/copied/x"), Module: mit},
		{ImportPath: "example.org/apache/api", Dir: filepath.Join(apacheMod, "api"), Module: ap},
		{ImportPath: "github.com/bounce-milter/bounce-milter/cmd/bounce-milter", Dir: "/nowhere", Module: &goModule{Path: "github.com/bounce-milter/bounce-milter", Main: true}},
	}}
	mods, err := describeModules(d, realClassifier(t))
	if err != nil {
		t.Fatal(err)
	}
	text, err := renderCopyright(readTemplate(t), mods)
	if err != nil {
		t.Fatal(err)
	}
	paras, err := parseDeb822(text)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range paras {
		if f, ok := p.fields["Files"]; ok {
			files = append(files, f)
		}
	}
	want := []string{"GOROOT/src/*", "vendor/example.org/apache/*", "vendor/example.org/mit/*", "vendor/example.org/mit/third_party/copied/*"}
	for _, w := range want {
		if !slices.Contains(files, w) {
			t.Errorf("no Files: %s paragraph; have %q", w, files)
		}
	}
	if i, j := slices.Index(files, "vendor/example.org/mit/*"), slices.Index(files, "vendor/example.org/mit/third_party/copied/*"); i > j {
		t.Error("the module's own paragraph must come before its sub-directory's (the last match applies)")
	}
	get := func(files string) paragraph {
		for _, p := range paras {
			if p.fields["Files"] == files {
				return p
			}
		}
		t.Fatalf("no paragraph %s", files)
		return paragraph{}
	}
	if p := get("vendor/example.org/apache/*"); p.get("License") != "Apache-2.0" ||
		p.get("Copyright") != "Copyright 2015 The Example Authors" ||
		!strings.Contains(p.get("Comment"), "Example Apache thing") ||
		!strings.Contains(p.get("Comment"), "example.org/apache v2.1.0") {
		t.Errorf("apache module paragraph: %#v", p.fields)
	}
	if p := get("vendor/example.org/mit/*"); !strings.HasPrefix(p.get("License"), "Expat\n") ||
		!strings.Contains(p.get("License"), "Permission is hereby granted") ||
		p.get("Copyright") != "Copyright (c) 2024 Jane Example" {
		t.Errorf("mit module paragraph: %#v", p.fields)
	}
	if p := get("vendor/example.org/mit/third_party/copied/*"); !strings.Contains(p.get("Copyright"), "2019 Someone Else") ||
		!strings.Contains(p.get("Comment"), "third_party/copied/COPYING") {
		t.Errorf("sub-directory paragraph: %#v", p.fields)
	}
	if p := get("GOROOT/src/*"); !strings.HasPrefix(p.get("License"), "BSD-3-clause\n") || !strings.Contains(p.get("Comment"), "go1.99") {
		t.Errorf("standard library paragraph: %#v", p.fields)
	}
	if strings.Contains(text, root) {
		t.Error("the copyright file names a path of the build machine")
	}
	if strings.Contains(text, "TERMS AND CONDITIONS FOR USE, REPRODUCTION") {
		t.Error("the full Apache text is copied in (lintian: copyright-file-contains-full-apache-2-license)")
	}
}

func runtimeGoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// A package whose module has no licence file, or one that is no licence,
// stops the build with the module's name.
func TestMissingOrUnknownLicenceFails(t *testing.T) {
	root := t.TempDir()
	none := filepath.Join(root, "none")
	odd := filepath.Join(root, "odd")
	writeFile(t, filepath.Join(none, "README"), "no licence here\n")
	writeFile(t, filepath.Join(odd, "LICENSE"), "All rights reserved. You may not copy, use or look at this code.\n")
	for _, c := range []struct{ dir, path, want string }{
		{none, "example.org/none", "no licence file"},
		{odd, "example.org/odd", "no licence recognised"},
	} {
		d := &deps{Packages: []goPackage{{ImportPath: c.path, Dir: c.dir, Module: &goModule{Path: c.path, Version: "v0.1.0", Dir: c.dir}}}}
		_, err := describeModules(d, realClassifier(t))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: error %v, want %q naming the module", c.path, err, c.want)
		}
	}
}

// The real graph of bounce-milter: every module linked into the binary has
// a paragraph, and the file is the same when made twice.
func TestCopyrightOfBounceMilter(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	d, err := listDeps("../..", "./cmd/bounce-milter", "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	mods, err := describeModules(d, realClassifier(t))
	if err != nil {
		t.Fatal(err)
	}
	text, err := renderCopyright(readTemplate(t), mods)
	if err != nil {
		t.Fatal(err)
	}
	again, err := describeModules(d, realClassifier(t))
	if err != nil {
		t.Fatal(err)
	}
	if text2, _ := renderCopyright(readTemplate(t), again); text2 != text {
		t.Error("two runs give different files")
	}
	seen := map[string]bool{}
	for _, p := range d.Packages {
		if p.Standard || p.Module == nil || p.Module.Main || seen[p.Module.Path] {
			continue
		}
		seen[p.Module.Path] = true
		if !strings.Contains(text, "\nFiles: vendor/"+p.Module.Path+"/*\n") {
			t.Errorf("module %s has no paragraph", p.Module.Path)
		}
		named := "Go module " + p.Module.Path + " " + p.Module.Version
		if !strings.Contains(text, named+";") && !strings.Contains(text, named+", replaced by ") {
			t.Errorf("module %s %s: version not named", p.Module.Path, p.Module.Version)
		}
	}
	if len(seen) < 5 {
		t.Fatalf("only %d modules in the graph", len(seen))
	}
	for _, want := range []string{"\nFiles: *\nCopyright: 2026 The bounce-milter Authors\nLicense: Apache-2.0\n",
		"\nFiles: internal/backscatter/testdata/corpus/messages/*/sisimai-*\n",
		"\nFiles: internal/backscatter/testdata/corpus/messages/*/sa-*\n",
		"\nFiles: GOROOT/src/*\n", "\nLicense: Apache-2.0\n Licensed under the Apache License"} {
		if !strings.Contains(text, want) {
			t.Errorf("copyright lacks %q", want)
		}
	}
}

// checkDEP5 refuses what the format forbids.
func TestCheckDEP5(t *testing.T) {
	head := "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
	good := head + "Files: *\nCopyright: 2026 Me\nLicense: Apache-2.0\n\nFiles: x/*\nCopyright: 2020 You\nLicense: Expat\n text\n .\n more\n\nLicense: Apache-2.0\n the text\n"
	if err := checkDEP5(good); err != nil {
		t.Fatalf("good file: %v", err)
	}
	for name, bad := range map[string]string{
		"no format":           "Files: *\nCopyright: 1\nLicense: X\n text\n",
		"no copyright":        head + "Files: *\nLicense: Expat\n text\n",
		"no licence":          head + "Files: *\nCopyright: 2026 Me\n",
		"no stand-alone":      head + "Files: *\nCopyright: 2026 Me\nLicense: MPL-2.0\n",
		"stand-alone twice":   good + "\nLicense: Apache-2.0\n again\n",
		"spaces in blank":     head + "Files: *\nCopyright: 2026 Me\nLicense: Expat\n text\n \n more\n",
		"continuation first":  " stray\n" + head,
		"field twice":         head + "Files: *\nFiles: a\nCopyright: 1\nLicense: Expat\n t\n",
		"stand-alone no text": head + "Files: *\nCopyright: 1\nLicense: Expat\n t\n\nLicense: Expat\n",
	} {
		if err := checkDEP5(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
