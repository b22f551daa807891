package main

// berth-runtime starts with sysmon's timer slack and one P (internal/gostart's threads.c
// has the reasons and the measurements).
import _ "github.com/berth-containers/berth/internal/gostart/onep"
