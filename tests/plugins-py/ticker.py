"""Asks for a tick every N ms (its argument) and logs `tick n=COUNT`."""

import logging

import witm

ticks = 0


def running():
    witm.set_tick(int(witm.args[0]))


def tick():
    global ticks
    ticks += 1
    logging.info("tick n=%d", ticks)
