// Command gen writes the acceptance scenarios into a directory: for each,
// NN-name.ndjson.gz (the events) and NN-name.expected.json (the scenario and
// the page set it must give).
//
//	go run ./pkg/scenario/gen -dir testdata/scenarios
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/healthrouter/healthrouter/pkg/scenario"
)

func main() {
	dir := flag.String("dir", "testdata/scenarios", "output `directory`")
	flag.Parse()
	all := scenario.All()
	if err := scenario.WriteFiles(*dir, all); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %d scenarios to %s\n", len(all), *dir)
}
