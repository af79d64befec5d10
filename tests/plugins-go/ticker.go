// Asks for a tick every N ms (its argument) and logs `tick n=COUNT`.
package main

import (
	"strconv"

	"witm/witm"
)

type ticker struct{ ticks int }

func (t *ticker) Start(args []string) error {
	period, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return err
	}
	return witm.SetTick(uint32(period))
}

func (t *ticker) Tick() {
	t.ticks++
	witm.Log("tick n=%d", t.ticks)
}

func init() { witm.Register(&ticker{}) }
