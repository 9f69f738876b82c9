// Package tap is contain's stand-in for github.com/mndrix/tap-go, which runtime-tools'
// validation programs import and Debian does not package (scripts/test-runtime-tools.sh puts
// it in their GOPATH). It writes the Test Anything Protocol, version 13: the calls those
// programs make (New, Header, Ok, Pass, Fail, Skip, Todo, Diagnostic(f), YAML, AutoPlan), no
// more.
package tap

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// T is one TAP stream: the number of the last test point and where the stream goes.
type T struct {
	nextTestNumber int
	// todo marks the next test point as to do (its failure is expected).
	todo bool
	// Writer receives the stream; standard output unless set.
	Writer io.Writer
}

// New starts a stream on standard output.
func New() *T {
	return &T{nextTestNumber: 1, Writer: os.Stdout}
}

func (t *T) printf(format string, a ...interface{}) {
	fmt.Fprintf(t.Writer, format, a...)
}

// Header writes the version line and, when the number of tests is known, the plan.
func (t *T) Header(testCount int) {
	t.printf("TAP version 13\n")
	if testCount > 0 {
		t.printf("1..%d\n", testCount)
	}
}

// Ok writes one test point, passed when test is true.
func (t *T) Ok(test bool, description string) {
	status := "ok"
	if !test {
		status = "not ok"
	}
	directive := ""
	if t.todo {
		directive = " # TODO"
		t.todo = false
	}
	t.printf("%s %d - %s%s\n", status, t.nextTestNumber, escape(description), directive)
	t.nextTestNumber++
}

// Todo marks the next test point as to do: its failure is known and expected.
func (t *T) Todo() *T {
	t.todo = true
	return t
}

// Pass writes a passed test point.
func (t *T) Pass(description string) { t.Ok(true, description) }

// Fail writes a failed test point.
func (t *T) Fail(description string) { t.Ok(false, description) }

// Skip writes count skipped test points, each with the reason.
func (t *T) Skip(count int, description string) {
	for i := 0; i < count; i++ {
		t.printf("ok %d # SKIP %s\n", t.nextTestNumber, escape(description))
		t.nextTestNumber++
	}
}

// Count is the number of test points written so far.
func (t *T) Count() int { return t.nextTestNumber - 1 }

// AutoPlan writes the plan for the test points written so far (a plan at the end).
func (t *T) AutoPlan() { t.printf("1..%d\n", t.Count()) }

// Diagnostic writes a comment, one "# " line per line of the message.
func (t *T) Diagnostic(message string) {
	for _, line := range strings.Split(strings.TrimRight(message, "\n"), "\n") {
		t.printf("# %s\n", line)
	}
}

// Diagnosticf is Diagnostic of a formatted message.
func (t *T) Diagnosticf(format string, a ...interface{}) { t.Diagnostic(fmt.Sprintf(format, a...)) }

// YAML writes a YAML block for the last test point (as JSON, which YAML reads).
func (t *T) YAML(message interface{}) error {
	body, err := json.MarshalIndent(message, "  ", "  ")
	if err != nil {
		return err
	}
	t.printf("  ---\n  %s\n  ...\n", body)
	return nil
}

// A description may not contain '#' unescaped (it would start a directive).
func escape(s string) string { return strings.ReplaceAll(s, "#", "\\#") }
