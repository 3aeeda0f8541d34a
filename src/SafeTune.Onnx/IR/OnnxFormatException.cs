namespace SafeTune.Onnx;

/// <summary>
/// A model, tensor or graph that is malformed or not supported. The message names the file, tensor, node or value at fault
/// and is meant to be shown to a user as one line.
/// </summary>
public sealed class OnnxFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OnnxFormatException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public OnnxFormatException(string message, Exception inner) : base(message, inner) { }
}
