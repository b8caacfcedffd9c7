// dynalite in memory on 127.0.0.1, on a port the OS picks (the CLI turns `--port 0` into its default 4567).
// Prints "dynalite listening on <port>" once it accepts connections; tests/conftest.py waits for that line.
// Ends on SIGTERM/SIGINT, or when stdin closes, so a killed test session cannot leave it behind.
'use strict'

const dynalite = require('dynalite')

// Tables become ACTIVE at once (default: 500 ms CREATING, which makes boto3's table_exists waiter sleep 20 s).
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })

server.listen(0, '127.0.0.1', () => {
  console.log(`dynalite listening on ${server.address().port}`)
})

const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.resume()
