import ArgumentParser
import Foundation

/// The `seriatim` command-line tool.
public struct SeriatimCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "seriatim",
        abstract: "Autoregressive generative models: train, evaluate, sample, benchmark.",
        subcommands: [Train.self, Generate.self, Evaluate.self, Sample.self, Inspect.self, Forecast.self, Backtest.self, Info.self, Demo.self, Bench.self])

    public init() {}
}

/// A user-facing failure: printed as one line on stderr, exit code 1.
public struct UserError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension SeriatimCommand {
    /// Parses and runs, turning thrown errors into one line on stderr and a non-zero exit.
    public static func runFromCommandLine(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            return 0
        } catch let error as UserError {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            return 1
        } catch let error where !(error is CleanExit) && !(error is ExitCode) && !isParserError(error) {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            return 1
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if !message.isEmpty {
                let handle = code == .success ? FileHandle.standardOutput : FileHandle.standardError
                handle.write(Data((message + "\n").utf8))
            }
            return code.rawValue
        }
    }

    static func isParserError(_ error: Error) -> Bool {
        String(reflecting: type(of: error)).contains("ArgumentParser")
    }
}
