// Package onep makes a command start with one P (GOMAXPROCS 1) besides gostart's timer
// slack for sysmon, without changing the CPUs its threads and children run on (see
// gostart's threads.c). berth-runtime imports it; the berth CLI does not (its teardown
// runs in goroutines side by side).
package onep

// const int berth_gostart_one_p = 1;
import "C"

import _ "github.com/berth-containers/berth/internal/gostart"
