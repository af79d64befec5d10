// Counts the responses it sees in a global and reports the count when witm
// stops (`done`).
package main

import "witm/witm"

var responses int

type responseCounter struct{ witm.Base }

func (responseCounter) Response(*witm.Flow) { responses++ }

func (responseCounter) Done() { witm.Log("counter: %d responses", responses) }

func init() { witm.Register(responseCounter{}) }
