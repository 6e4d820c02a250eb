'use strict'
// Usage: node group.js BROKERS [N_PER_PHASE]
//
// Two consumers ("a", "b") join one group on a 3-partition topic. Phase 1: once both
// hold disjoint assignments covering all partitions, N keyed records are produced and
// each member records what it reads. Phase 2: "b" leaves; once "a" owns every
// partition, N more records are produced and read by "a". stdout gets one JSON line:
// per phase, each member's assignment and the (partition, offset, seq) it consumed.

const { makeKafka, makeRecord, withTimeout, fail, emit } = require('./common')

const TOPIC = 'kafkajs-group'
const GROUP = 'kafkajs-group'
const PARTITIONS = 3
const TIMEOUT_MS = Number(process.env.KAFKAJS_TIMEOUT_MS || 120000)

// Resolves when predicate() holds, checked whenever poke() is called.
function waiter () {
  const pending = []
  return {
    until (predicate) {
      if (predicate()) return Promise.resolve()
      return new Promise((resolve) => pending.push({ predicate, resolve }))
    },
    poke () {
      for (let i = pending.length - 1; i >= 0; i--) {
        if (pending[i].predicate()) {
          pending[i].resolve()
          pending.splice(i, 1)
        }
      }
    }
  }
}

async function main () {
  const [brokers, nArg] = process.argv.slice(2)
  if (!brokers) throw new Error('usage: node group.js BROKERS [N]')
  const n = Number(nArg || 3000)
  const kafka = makeKafka(brokers, 'kafkajs-group')
  const baseTimestamp = Date.now()
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: TOPIC, numPartitions: PARTITIONS }] })
  await admin.disconnect()

  const wait = waiter()
  const members = {}
  for (const name of ['a', 'b']) {
    const consumer = kafka.consumer({ groupId: GROUP, heartbeatInterval: 500, maxWaitTimeInMs: 500, allowAutoTopicCreation: false })
    const member = { consumer, assignment: null, joins: 0, consumed: [] }
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      member.assignment = (payload.memberAssignment[TOPIC] || []).slice().sort()
      member.joins += 1
      wait.poke()
    })
    members[name] = member
  }
  const seqOf = (message) => Number(message.headers.seq.toString())
  for (const [name, member] of Object.entries(members)) {
    await member.consumer.connect()
    await member.consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
    await member.consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) member.consumed.push([batch.partition, Number(m.offset), seqOf(m)])
        wait.poke()
      }
    })
    // Let "a" settle alone first so that "b" joining is a real rebalance.
    if (name === 'a') await withTimeout(wait.until(() => member.assignment !== null), TIMEOUT_MS, 'a joins')
  }

  const { a, b } = members
  const split = () => {
    if (!a.assignment || !b.assignment || !a.assignment.length || !b.assignment.length) return false
    const all = [...a.assignment, ...b.assignment].sort()
    return all.length === PARTITIONS && all.every((p, i) => p === i)
  }
  await withTimeout(wait.until(split), TIMEOUT_MS, 'a and b split the partitions')

  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const produce = async (from, to) => {
    const messages = []
    for (let i = from; i < to; i++) messages.push(makeRecord(i, baseTimestamp))
    await producer.send({ topic: TOPIC, messages, acks: -1 })
  }
  const consumedTotal = () => a.consumed.length + b.consumed.length
  const summary = { ok: true, n }

  await produce(0, n)
  await withTimeout(wait.until(() => consumedTotal() >= n), TIMEOUT_MS, `phase 1 reads ${n} records`)
  summary.phase1 = {
    assignment: { a: a.assignment, b: b.assignment },
    consumed: { a: a.consumed.splice(0), b: b.consumed.splice(0) }
  }

  await b.consumer.disconnect()
  const aOwnsAll = () => a.assignment.length === PARTITIONS
  await withTimeout(wait.until(aOwnsAll), TIMEOUT_MS, 'a takes over every partition after b leaves')
  await produce(n, 2 * n)
  await withTimeout(wait.until(() => a.consumed.length >= n), TIMEOUT_MS, `phase 2 reads ${n} records`)
  summary.phase2 = { assignment: { a: a.assignment }, consumed: { a: a.consumed.splice(0), b: b.consumed } }
  summary.joins = { a: a.joins, b: b.joins }

  await producer.disconnect()
  await a.consumer.disconnect()
  await emit(summary)
}

main().then(() => process.exit(0), fail)
