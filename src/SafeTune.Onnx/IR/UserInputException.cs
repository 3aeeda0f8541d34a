namespace SafeTune.Onnx;

/// <summary>
/// An error caused by the caller's input (a file, a value or a setting at fault), not by SafeTune itself. The message
/// names what is at fault and is meant to be shown to a user as one line.
/// </summary>
public class UserInputException(string message, Exception? inner = null) : Exception(message, inner);
