import Foundation
import SeriatimCommands
import Tensors

Allocator.keepLargeBuffers()

exit(SeriatimCommand.runFromCommandLine())
